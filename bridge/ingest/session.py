"""What the broker holds in the bridge's persistent session: the filters it subscribed.

MQTT has no way to ask a broker which subscriptions a session holds, and a resumed session keeps
those of the last run. So the bridge records them (in Redis, ``mqtt:bridge:session-filters``) and,
on a resumed session, unsubscribes those it no longer wants: a filter removed from MQTT_TOPICS, or
one unsubscribed by command while the bridge was away.

Used by paho's thread (on connect), the command thread (subscribe/unsubscribe) and housekeeping
(save), hence the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class SessionFilters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._filters: set[str] | None = None  # None until read from Redis
        self._changed = False
        self.resumed_unknown = False  # a session resumed before the record could be read

    def loaded(self) -> bool:
        return self._filters is not None

    def load(self, saved: set[str]) -> None:
        """The record read from Redis at start (unless a connect already knew better)."""
        with self._lock:
            if self._filters is None:
                self._filters = set(saved)

    def connected(self, resumed: bool, wanted: set[str]) -> list[str]:
        """A connect subscribes ``wanted``; returns the stale filters to unsubscribe (sorted)."""
        with self._lock:
            known = self._filters
            stale = sorted(known - wanted) if resumed and known is not None else []
            self.resumed_unknown = resumed and known is None
            if not self.resumed_unknown:  # a new session holds exactly what we subscribe now
                self._filters, self._changed = set(wanted), True
        return stale

    def update(self, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        with self._lock:
            filters = set() if self._filters is None else self._filters
            self._filters = (filters | set(add)) - set(remove)
            self._changed = True

    def take_change(self) -> list[str] | None:
        """The filters to save, when they changed since the last call."""
        with self._lock:
            if not self._changed or self._filters is None:
                return None
            self._changed = False
            return sorted(self._filters)

    def unsaved(self) -> None:
        """Saving failed: offer the change again next time."""
        with self._lock:
            self._changed = True
