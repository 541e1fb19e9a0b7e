"""Capped exponential backoff as an object, so tests can pass one that never waits."""

from __future__ import annotations

import random
import threading


class Backoff:
    """Delays of base, 2*base, 4*base … capped at ``cap``, with up to 25 % jitter.

    ``wait`` sleeps on an Event, so a shutdown interrupts it at once.
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0, jitter: float = 0.25):
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2 ** min(self.failures, 30)))
        self.failures += 1
        return delay * (1 - self.jitter * random.random())

    def reset(self) -> None:
        self.failures = 0

    def wait(self, stop: threading.Event) -> bool:
        """Sleep for the next delay; True when ``stop`` was set meanwhile."""
        return stop.wait(self.next_delay())


class NoWait(Backoff):
    """For tests: counts failures like Backoff but never sleeps."""

    def __init__(self) -> None:
        super().__init__(base=0.001, cap=0.001, jitter=0.0)

    def wait(self, stop: threading.Event) -> bool:
        self.next_delay()
        return stop.is_set()
