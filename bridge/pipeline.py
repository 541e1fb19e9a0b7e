"""The writer thread: drains the ingest deque in batches and forwards them to Redis.

Source (paho thread) -> bounded deque -> this thread -> RedisSink. ``$SYS`` messages are routed
to the broker-insight handler instead, and forwarded too only when a ``$SYS`` filter asks for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import redis

from bridge import protocol
from bridge.backoff import Backoff
from bridge.counters import Counters
from bridge.mqtt_source import Item
from bridge.redis_sink import RedisSink
from bridge.topics import TopicIndex

logger = logging.getLogger(__name__)

BATCH_MAX = 1000
# Let a batch build rather than wake per message. Every pass of this thread takes the GIL from
# paho's thread and hands it back, and on these machines each hand-off costs paho far more than
# the pass itself: measured with bench/throughput.py, 3 ms pauses gave 0.64 x the bare paho
# rate and 10 ms gave 0.86 x. 10 ms is invisible behind the dashboard's 100 ms frames.
IDLE_WAIT = 0.010


def drain(items: deque[Item], limit: int) -> list[Item]:
    """Take up to ``limit`` items from the left; safe against a concurrent appender."""
    count = min(len(items), limit)
    popleft = items.popleft
    return [popleft() for _ in range(count)]


class Writer(threading.Thread):
    def __init__(
        self,
        items: deque[Item],
        sink: RedisSink,
        counters: Counters,
        topic_index: TopicIndex,
        on_sys: Callable[[list[Item]], None],
        forwards_sys: Callable[[str], bool],
        stop: threading.Event,
        backoff: Backoff | None = None,
        flush_timeout: float = 2.0,
        payload_max_bytes: int = protocol.DEFAULT_PAYLOAD_MAX_BYTES,
    ):
        super().__init__(name="redis-writer", daemon=True)
        self.items = items
        self.sink = sink
        self.counters = counters
        self.topic_index = topic_index
        self.on_sys = on_sys
        self.forwards_sys = forwards_sys
        self.stop_event = stop
        self.backoff = backoff or Backoff(base=0.2, cap=5.0)
        self.flush_timeout = flush_timeout
        self.payload_max_bytes = payload_max_bytes
        self._topic_cache: dict[str, str] = {}
        self._outage_started: float | None = None
        self._dropped_at_outage = 0

    def run(self) -> None:
        deadline: float | None = None
        while True:
            if self.stop_event.is_set() and deadline is None:
                deadline = time.monotonic() + self.flush_timeout
            batch = drain(self.items, BATCH_MAX)
            if not batch:
                if deadline is not None:
                    return
                time.sleep(IDLE_WAIT)
                continue
            try:
                self.process(batch, deadline)
            except Exception:  # a bug here must not stop forwarding for good
                self.counters.dropped_redis += len(batch)
                logger.exception("dropped a batch of %d messages after an unexpected error", len(batch))
            if deadline is not None and time.monotonic() > deadline:
                left = len(self.items)
                if left:
                    self.counters.dropped_queue += left
                    logger.warning("shutdown: %d queued messages could not be written in time", left)
                return
            if deadline is None and len(self.items) < BATCH_MAX:
                time.sleep(IDLE_WAIT)  # a trickle: let the next batch build (see IDLE_WAIT)

    def process(self, batch: list[Item], deadline: float | None = None) -> None:
        """Encode a batch, route $SYS, forward the rest; retries while Redis is unreachable."""
        messages: list[str] = []
        forwarded: list[Item] = []
        system: list[Item] = []
        encode, cache, max_payload = protocol.message_json, self._topic_cache, self.payload_max_bytes
        for item in batch:
            topic = item[0]
            if topic.startswith("$SYS/"):
                system.append(item)
                if not self.forwards_sys(topic):
                    continue
            forwarded.append(item)
            messages.append(encode(topic, item[1], item[2], item[3], item[4], cache, max_payload))
        if system:
            self.on_sys(system)
        if forwarded:
            self.topic_index.observe(forwarded)
        if messages:
            self._write(messages, deadline)

    def _write(self, messages: list[str], deadline: float | None) -> None:
        while True:
            try:
                self.sink.forward(messages)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._note_outage(exc)
                if self.stop_event.is_set():
                    # Shutting down: keep trying briefly, then give the batch up (and count it).
                    deadline = deadline or time.monotonic() + self.flush_timeout
                    if time.monotonic() > deadline:
                        self.counters.dropped_redis += len(messages)
                        return
                    time.sleep(0.1)
                else:
                    self.backoff.wait(self.stop_event)
                continue
            except redis.RedisError as exc:
                # Redis answered but refused (out of memory, wrong key type): retrying won't help.
                self.counters.dropped_redis += len(messages)
                logger.error("Redis refused a batch of %d messages: %s", len(messages), exc)
                return
            self.counters.forwarded += len(messages)
            self._note_recovery()
            return

    def _note_outage(self, exc: Exception) -> None:
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            self._dropped_at_outage = self.counters.dropped
            logger.error(
                "Redis unreachable (%s: %s); queueing messages and retrying with backoff",
                type(exc).__name__,
                exc,
            )

    def _note_recovery(self) -> None:
        if self._outage_started is None:
            return
        lasted = time.monotonic() - self._outage_started
        lost = self.counters.dropped - self._dropped_at_outage
        logger.info("Redis is back after %.1f s; %d messages were dropped meanwhile", lasted, lost)
        self._outage_started = None
        self.backoff.reset()
