"""The bridge's counters: shared by its threads, read by the heartbeat and metrics.

Each counter has exactly one writing thread, so plain integer fields are enough under the GIL
(``received``/``dropped_queue`` by the paho thread, ``forwarded``/``dropped_redis``/``system`` by
the writer,
``commands_*`` by the command thread, ``reconnects`` by the paho thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Counters:
    received: int = 0
    forwarded: int = 0
    dropped_queue: int = 0  # queue full: Redis slower than the broker, or down
    dropped_redis: int = 0  # a batch that Redis refused or could not take
    system: int = 0  # $SYS messages read for the stats and not forwarded, and $CONTROL ones (never)
    reconnects: int = 0
    commands_ok: int = 0
    commands_failed: int = 0
    queue_depth: Callable[[], int] = field(default=lambda: 0, repr=False)

    @property
    def dropped(self) -> int:
        return self.dropped_queue + self.dropped_redis

    def snapshot(self) -> dict[str, int]:
        """The counter names of the contract (heartbeat and metrics). Every message received is
        in exactly one place: received = forwarded + dropped + queue_depth + system."""
        return {
            "received": self.received,
            "forwarded": self.forwarded,
            "dropped": self.dropped,
            "queue_depth": self.queue_depth(),
            "system": self.system,
            "reconnects": self.reconnects,
            "commands_ok": self.commands_ok,
            "commands_failed": self.commands_failed,
        }
