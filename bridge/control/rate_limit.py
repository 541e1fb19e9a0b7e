"""At most N events in a sliding window, in one process: the bridge's own limit on commands that
reach out to other hosts (a connection test), whoever sends them (the dashboard limits each of
its sessions too, but anyone with ``redis-cli`` can reach the bridge directly)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimit:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()  # background commands run on threads of their own

    def take(self) -> float | None:
        """Count one event and return None, or, when the limit is reached, count nothing and
        return the seconds until one is allowed again."""
        with self._lock:
            now = self._clock()
            while self._times and now - self._times[0] >= self.window:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return self.window - (now - self._times[0])
            self._times.append(now)
            return None
