"""The ingest queue between paho's thread and the writer: bounded in messages and in bytes, and
the event that wakes the writer when something is waiting.

It is a ``deque`` of items (``mqtt_source.Item``) with a ``budget``: paho's thread alone appends
and counts what it added (``bytes_in``), the writer alone pops and counts what it took
(``bytes_out``), so each counter has one writing thread and the difference is exact under the GIL.
A plain ``deque`` still works everywhere (tests build one): it has no byte budget, and the writer
then polls it every ``writer.IDLE_WAIT`` instead of sleeping on the event.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from typing import Any

from bridge.ingest import wire


class QueueBudget:
    """The byte side of the queue, and the writer's wake-up.

    The wake-up is a bare lock held while the writer sleeps on it, released by whoever queues a
    message then: at 2,000 messages a second the writer sleeps and wakes for every message, and
    a ``threading.Event`` (a condition, a new lock per wait) cost more than the message.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes_in = 0  # paho's thread only
        self.bytes_out = 0  # the writer only
        self._signal = threading.Lock()
        self._signal.acquire()  # held: the writer's acquire() blocks until someone releases it
        self._sleeping = False

    @property
    def queued_bytes(self) -> int:
        return self.bytes_in - self.bytes_out

    def room(self, weight: int, allowance: int = 0) -> bool:
        return self.bytes_in - self.bytes_out + weight <= self.max_bytes + allowance

    def added(self, weight: int) -> None:
        self.bytes_in += weight
        if self._sleeping:
            self.wake()

    def wake(self) -> None:
        """Wake the writer if it sleeps (any thread; a second call meanwhile is harmless)."""
        self._sleeping = False
        with contextlib.suppress(RuntimeError):  # already released: the writer wakes anyway
            self._signal.release()

    def sleep(self, items: deque[Any], timeout: float) -> None:
        """The writer: wait until something is queued, or ``timeout`` seconds. The flag goes up
        before the queue is looked at, so an append in between always releases the lock."""
        self._sleeping = True
        if not items:
            self._signal.acquire(timeout=timeout)
        self._sleeping = False


class IngestQueue(deque[Any]):
    """A deque of ingest items with a byte budget (see the module docstring)."""

    budget: QueueBudget

    def __init__(self, max_bytes: int):
        super().__init__()
        self.budget = QueueBudget(max_bytes)


def budget_of(items: deque[Any]) -> QueueBudget | None:
    return getattr(items, "budget", None)


def take(items: deque[Any], max_count: int, max_bytes: int) -> list[Any]:
    """A batch from the left: at most ``max_count`` items and about ``max_bytes`` (at least one
    item, however large); counted out of the budget. Safe against a concurrent appender."""
    batch, weight = wire.take(items, max_count, max_bytes)
    budget = budget_of(items)
    if budget is not None:
        budget.bytes_out += weight
    return batch
