"""One copy per message when the bridge's filters overlap (``a/+`` and ``+/b`` both match ``a/b``).

Over MQTT 5, mosquitto (2.0.11, observed) sends a client one copy of a message per matching
subscription. So each of the bridge's filters is subscribed with its own subscription identifier,
and a copy is kept only when it carries the lowest identifier among the bridge's filters that
match its topic. Over MQTT 3.1.1 the same mosquitto sends one copy by itself, and there are no
identifiers to check.
"""

from __future__ import annotations

import threading
from itertools import combinations

from bridge.contract.protocol import topic_matches


def _levels(topic_filter: str) -> list[str]:
    levels = topic_filter.split("/")
    return levels[2:] if levels[0] == "$share" and len(levels) > 2 else levels


def can_overlap(first: str, second: str) -> bool:
    """True when some topic matches both filters."""
    a, b = _levels(first), _levels(second)
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else None
        y = b[index] if index < len(b) else None
        # Wildcards at the first level never match a topic that starts with '$'.
        if (
            index == 0
            and x is not None
            and y is not None
            and ((x in ("+", "#") and y.startswith("$")) or (y in ("+", "#") and x.startswith("$")))
        ):
            return False
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and x != "+" and y != "+":
            return False
    return True


class CopyFilter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._next = 1
        # Read by paho's thread on every message: replaced whole, never changed in place.
        self._by_id: tuple[tuple[int, str], ...] = ()
        self.active = False  # only when two filters overlap is there anything to check

    def reset(self) -> None:
        """A new connection (clean start): the broker has forgotten every identifier."""
        with self._lock:
            self._ids.clear()
            self._next = 1
            self._refresh()

    def assign(self, topic_filter: str) -> int:
        with self._lock:
            self._ids[topic_filter] = identifier = self._next
            self._next += 1
            self._refresh()
        return identifier

    def has(self, topic_filter: str) -> bool:
        return topic_filter in self._ids

    def forget(self, topic_filter: str) -> None:
        with self._lock:
            self._ids.pop(topic_filter, None)
            self._refresh()

    def _refresh(self) -> None:
        self._by_id = tuple(sorted((i, f) for f, i in self._ids.items()))
        self.active = any(can_overlap(a, b) for a, b in combinations(self._ids, 2))

    def is_first_copy(self, topic: str, identifiers: list[int]) -> bool:
        """Keep this copy? Yes when it was sent for the lowest-numbered matching filter."""
        for identifier, topic_filter in self._by_id:
            if topic_matches(topic_filter, topic):
                return identifier in identifiers
        return True
