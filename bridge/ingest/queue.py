"""The ingest queue between paho's thread and the writer: bounded in messages and in bytes, and
the event that wakes the writer when something is waiting.

It is a ``deque`` of items (``mqtt_source.Item``) with a ``budget``: paho's thread alone appends
and counts what it added (``bytes_in``), the writer alone pops and counts what it took
(``bytes_out``), so each counter has one writing thread and the difference is exact under the GIL.
A plain ``deque`` still works everywhere (tests build one): it has no byte budget, and the writer
then polls it every ``writer.IDLE_WAIT`` instead of sleeping on the event.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from bridge.ingest import wire


class QueueBudget:
    """The byte side of the queue, and the writer's wake-up."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes_in = 0  # paho's thread only
        self.bytes_out = 0  # the writer only
        self.wake = threading.Event()

    @property
    def queued_bytes(self) -> int:
        return self.bytes_in - self.bytes_out

    def room(self, weight: int, allowance: int = 0) -> bool:
        return self.bytes_in - self.bytes_out + weight <= self.max_bytes + allowance

    def added(self, weight: int) -> None:
        self.bytes_in += weight
        wake = self.wake
        if not wake.is_set():  # the writer sleeps only once it cleared the event and found nothing
            wake.set()


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
