"""Which filters the bridge subscribes to, and as what: MQTT_TOPICS (configuration) plus those
added by command; in a bridge group, data filters as ``$share/<group>/<filter>``.

Kept in memory so the paho thread can resubscribe on every connect without Redis I/O; the
command thread persists the command-added ones in ``mqtt:subscriptions``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from bridge.contract.protocol import topic_matches

SYS_FILTER = "$SYS/#"
# A bridge-group member subscribes its data filters as $share/<group>/<filter> (bridge/group/).
SHARE_PREFIX = "$share/"


def is_data_filter(topic_filter: str) -> bool:
    """Data filters are shared in a group; $SYS (stats), $CONTROL (the answers to the leader's own
    requests, which must all reach it) and already-shared filters are not."""
    return not topic_filter.startswith(("$SYS", "$CONTROL/", SHARE_PREFIX))


def shared(group: str, topic_filter: str) -> str:
    """The filter as the broker sees it in group mode."""
    return f"{SHARE_PREFIX}{group}/{topic_filter}" if is_data_filter(topic_filter) else topic_filter


def unshared(group: str, topic_filter: str) -> str:
    prefix = f"{SHARE_PREFIX}{group}/"
    return topic_filter[len(prefix) :] if topic_filter.startswith(prefix) else topic_filter


@dataclass(frozen=True)
class Subscription:
    filter: str
    qos: int
    created_at: float | None
    source: str  # "config" or "command"


def covers(wide: str, narrow: str) -> bool:
    """True when every topic matching ``narrow`` also matches ``wide``."""
    if wide == narrow:
        return True
    wide_levels, narrow_levels = wide.split("/"), narrow.split("/")
    if narrow_levels[0].startswith("$") and wide_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(wide_levels):
        if level == "#":
            return True
        if index >= len(narrow_levels):
            return False
        other = narrow_levels[index]
        if other == "#" or (level != "+" and (other == "+" or other != level)):
            return False
    return len(wide_levels) == len(narrow_levels)


class SubscriptionSet:
    def __init__(self, configured: tuple[str, ...], qos: int):
        self._lock = threading.Lock()
        self._config = {f: Subscription(f, qos, None, "config") for f in configured}
        self._commands: dict[str, Subscription] = {}
        self._paused: set[str] = set()  # listed but not subscribed on the broker
        self.version = 0  # bumped on every change, so caches of "which filters" know to refresh

    def is_configured(self, topic_filter: str) -> bool:
        return topic_filter in self._config

    def replace_commands(self, records: dict[str, Subscription]) -> None:
        with self._lock:
            self._commands = dict(records)
            self.version += 1

    def add(self, sub: Subscription) -> None:
        with self._lock:
            self._commands[sub.filter] = sub
            self.version += 1

    def remove(self, topic_filter: str) -> bool:
        with self._lock:
            self._paused.discard(topic_filter)
            self.version += 1
            return self._commands.pop(topic_filter, None) is not None

    def has(self, topic_filter: str) -> bool:
        with self._lock:
            return topic_filter in self._config or topic_filter in self._commands

    def set_paused(self, topic_filter: str, paused: bool) -> None:
        with self._lock:
            (self._paused.add if paused else self._paused.discard)(topic_filter)
            self.version += 1

    def paused(self) -> set[str]:
        with self._lock:
            return set(self._paused)

    def active(self) -> list[Subscription]:
        """The filters bridged now: every listed one but the paused."""
        with self._lock:
            return [
                s for s in (*self._config.values(), *self._commands.values()) if s.filter not in self._paused
            ]

    def all(self) -> list[Subscription]:
        with self._lock:
            return [*self._config.values(), *self._commands.values()]

    def broker_filters(self) -> list[tuple[str, int]]:
        """The filters to subscribe on the broker: one covered by another is left out, so a
        message matching both is delivered (and forwarded) once. Shared subscriptions are kept.
        Paused filters are left out (and no longer cover others)."""
        subs = self.active()
        chosen: list[tuple[str, int]] = []
        for sub in subs:
            if covers(SYS_FILTER, sub.filter):
                continue  # the bridge always holds $SYS/# for the stats
            wider = [
                other
                for other in subs
                if other.filter != sub.filter
                and not other.filter.startswith("$share/")
                and covers(other.filter, sub.filter)
                and (not covers(sub.filter, other.filter))
            ]
            if wider and not sub.filter.startswith("$share/"):
                continue
            if all(sub.filter != f for f, _ in chosen):
                qos = max([sub.qos, *(o.qos for o in subs if covers(sub.filter, o.filter))])
                chosen.append((sub.filter, qos))
        return chosen

    def forwards_sys(self, topic: str) -> bool:
        """$SYS topics feed the stats; they reach mqtt:messages only when a filter names $SYS."""
        return any(s.filter.startswith("$SYS") and topic_matches(s.filter, topic) for s in self.active())
