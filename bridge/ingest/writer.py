"""The writer thread: drains the ingest deque in batches and forwards them to Redis.

Source (paho thread) -> bounded deque -> this thread -> RedisSink. ``$SYS`` messages are routed
to the broker-insight handler instead, and forwarded too only when a ``$SYS`` filter asks for it.

The thread sleeps until the queue wakes it (``queue.QueueBudget``), not on a clock: a message
that arrives alone is written at once (sub-millisecond, publish to reader), and under a flood
each pass takes what waited meanwhile, so batches grow with the load by themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import redis

from bridge.contract import protocol, redis_topology
from bridge.contract.backoff import Backoff
from bridge.ingest import heap, queue, wire
from bridge.ingest.budgets import HistoryBudget
from bridge.ingest.counters import Counters
from bridge.ingest.mqtt_source import Item
from bridge.ingest.redis_sink import MAX_BATCH_BYTES, RedisSink, chunks

logger = logging.getLogger(__name__)

__all__ = ["BATCH_MAX", "HistoryBudget", "Writer", "drain"]

BATCH_MAX = 1000
# A pass takes at most this many bytes of messages (payloads as queued), so a burst of large
# messages is encoded a few MiB at a time rather than all at once (the bridge's memory).
BATCH_MAX_BYTES = MAX_BATCH_BYTES
# With a plain deque (tests), no event tells the writer that something waits: it polls.
IDLE_WAIT = 0.010
WAKE_TIMEOUT = 0.1  # the longest the writer sleeps on the event before looking at the stop flag
# Small batches (messages arriving one at a time) are told to the topic index and the per-filter
# counts together, every OBSERVE_EVERY messages, OBSERVE_BYTES or OBSERVE_DELAY seconds, and
# whenever the writer falls idle: at 2,000 msg/s their per-call cost was a third of a pass.
# Nobody sees the difference: the topic list is published every 10 s, the counts every tick.
OBSERVE_EVERY = 256
OBSERVE_BYTES = 1024 * 1024
OBSERVE_DELAY = 0.05
REFUSAL_LOG_INTERVAL = 10.0  # seconds between log lines about refused (dropped) messages


def drain(items: deque[Item], limit: int) -> list[Item]:
    """Take up to ``limit`` items from the left; safe against a concurrent appender."""
    return queue.take(items, limit, 1 << 62)


class TopicObserver(Protocol):
    """What the writer tells about the messages it forwards (the topic index, bridge/insight/)."""

    def observe(self, items: list[Item]) -> None: ...


Ack = Callable[[int, int], None]  # (mid, qos): acknowledge a QoS >= 1 message to the broker
# (items, start, end): acknowledge the QoS >= 1 ones of items[start:end] at once
AckItems = Callable[[list[Item], int, int], None]


def _no_ack(mid: int, qos: int) -> None:
    return None


class Writer(threading.Thread):
    """Forwards batches; counts each message exactly once as forwarded, dropped or system.

    A QoS >= 1 message is acknowledged to the broker (``ack``) only once Redis holds it, so what
    the bridge has not written stays the broker's to deliver again (at-least-once).
    """

    def __init__(
        self,
        items: deque[Item],
        sink: RedisSink,
        counters: Counters,
        topic_index: TopicObserver,
        on_sys: Callable[[list[Item]], None],
        forwards_sys: Callable[[str], bool],
        stop: threading.Event,
        backoff: Backoff | None = None,
        flush_timeout: float = 2.0,
        payload_max_bytes: int = protocol.DEFAULT_PAYLOAD_MAX_BYTES,
        ack: Ack = _no_ack,
        history_max_bytes: int = 0,
        on_forwarded: Callable[[list[Item]], None] | None = None,
        on_control: Callable[[list[Item]], None] | None = None,
        ack_items: AckItems | None = None,
        linger: float = 0.0,
    ):
        super().__init__(name="redis-writer", daemon=True)
        self.items = items
        self.sink = sink
        self.counters = counters
        self.topic_index = topic_index
        self.on_sys = on_sys
        self.forwards_sys = forwards_sys
        self.on_control = on_control
        self.stop_event = stop
        self.backoff = backoff or Backoff(base=0.2, cap=5.0)
        self.flush_timeout = flush_timeout
        self.payload_max_bytes = payload_max_bytes
        self.ack = ack
        self.ack_items = ack_items or self._ack_each
        self.linger = linger  # WRITER_LINGER_MS: a pause after a pass that left no full batch
        self.budget = queue.budget_of(items)
        self.history = HistoryBudget(sink.history_maxlen, history_max_bytes)
        self.on_forwarded = on_forwarded  # per-filter statistics (bridge/subscription_control.py)
        # Taken from the queue but not yet counted: part of queue_depth, so that received =
        # forwarded + dropped + queued + system holds at every moment.
        self.in_flight = 0
        self._token = 0
        self._refused_since_log = 0
        self._refusal_logged_at = -REFUSAL_LOG_INTERVAL
        self._outage_started: float | None = None
        self._trim_pending = False
        self._unobserved: list[Item] = []  # forwarded, not yet told to the topic index
        self._unobserved_bytes = 0
        self._unobserved_since = 0.0
        self._dropped_at_outage = 0

    def run(self) -> None:
        deadline: float | None = None
        while True:
            if self.stop_event.is_set() and deadline is None:
                deadline = time.monotonic() + self.flush_timeout
            self.in_flight = min(len(self.items), BATCH_MAX)
            batch = queue.take(self.items, BATCH_MAX, BATCH_MAX_BYTES)
            self.in_flight = len(batch)
            if not batch:
                self._observe_pending()
                if deadline is not None:
                    return
                if self._trim_pending:  # a burst is over: give its memory back (bridge/ingest/heap.py)
                    self._trim_pending = False
                    heap.trim()
                self._sleep()
                continue
            if self.budget is not None and self.budget.queued_bytes >= heap.TRIM_AFTER_BYTES:
                self._trim_pending = True
            try:
                self.process(batch, deadline, defer_observe=True)
            except Exception:  # a bug here must not stop forwarding for good
                logger.exception("dropped %d messages after an unexpected error", self.in_flight)
            finally:
                self.counters.dropped_redis += self.in_flight
                self.in_flight = 0
            if self.linger and deadline is None and len(self.items) < BATCH_MAX:
                self.stop_event.wait(self.linger)  # let the next batch build (WRITER_LINGER_MS)
            if deadline is not None and time.monotonic() > deadline:
                left = len(self.items)
                if left:
                    # Not acknowledged: the broker delivers QoS >= 1 ones again on the next start.
                    self.counters.dropped_queue += left
                    logger.warning("shutdown: %d queued messages could not be written in time", left)
                self._observe_pending()
                return

    def _sleep(self) -> None:
        """Until something is queued (or the stop flag is set, looked at ten times a second)."""
        budget = self.budget
        if budget is None:
            time.sleep(IDLE_WAIT)
            return
        if not self.stop_event.is_set():
            budget.sleep(self.items, WAKE_TIMEOUT)

    def process(self, batch: list[Item], deadline: float | None = None, defer_observe: bool = False) -> None:
        """Encode a batch, route $SYS, forward the rest; retries while Redis is unreachable.
        ``defer_observe``: a small batch may be told to the topic index later (OBSERVE_EVERY)."""
        self.in_flight = len(batch)
        messages, special = wire.encode(batch, self.payload_max_bytes)
        forwarded = batch
        if special:  # $SYS or $CONTROL topics in this batch (rare): route them one by one
            messages, forwarded, system, control = self._route(batch)
            if control:
                self._control(control)
            if system:
                self.on_sys(system)
                consumed = len(batch) - len(messages) - len(control)  # $SYS read for the stats only
                self.counters.system += consumed
                self.in_flight -= consumed
        if forwarded:
            self._observe(forwarded, defer_observe)
        if messages:
            self._write(messages, forwarded, deadline)

    def _observe(self, forwarded: list[Item], defer: bool) -> None:
        pending = self._unobserved
        if defer and len(forwarded) < OBSERVE_EVERY:
            if not pending:
                self._unobserved_since = time.monotonic()
            pending.extend(forwarded)
            self._unobserved_bytes += wire.weigh(forwarded)
            if (
                len(pending) < OBSERVE_EVERY
                and self._unobserved_bytes < OBSERVE_BYTES
                and time.monotonic() - self._unobserved_since < OBSERVE_DELAY
            ):
                return
            forwarded = pending
        elif pending:
            forwarded = pending + forwarded
        self._unobserved, self._unobserved_bytes = [], 0
        self.topic_index.observe(forwarded)
        if self.on_forwarded is not None:
            self.on_forwarded(forwarded)

    def _observe_pending(self) -> None:
        if self._unobserved:
            try:
                self._observe([], False)
            except Exception:  # as in run(): a bug there must not stop forwarding
                logger.exception("counting %d forwarded messages failed", len(self._unobserved))
                self._unobserved, self._unobserved_bytes = [], 0

    def _route(self, batch: list[Item]) -> tuple[list[str | bytes], list[Item], list[Item], list[Item]]:
        messages: list[str | bytes] = []
        forwarded: list[Item] = []
        system: list[Item] = []
        control: list[Item] = []
        max_payload = self.payload_max_bytes
        for item in batch:
            topic = item[0]
            if topic.startswith("$"):
                if topic.startswith("$SYS/"):
                    system.append(item)
                    if not self.forwards_sys(topic):
                        continue
                elif topic.startswith(protocol.CONTROL_PREFIX):
                    # Broker control (dynamic security): a request may carry a password in clear,
                    # so these never reach Redis, whatever filter matched them (bridge/dynsec.py).
                    control.append(item)
                    continue
            forwarded.append(item)
            messages.append(wire.encode_item(item, max_payload))
        return messages, forwarded, system, control

    def _control(self, items: list[Item]) -> None:
        """$CONTROL messages: to their handler, never to Redis; counted with the $SYS ones (read by
        the bridge itself) and acknowledged, since no Redis write will ever do it."""
        if self.on_control is not None:
            try:
                self.on_control(items)
            except Exception:  # a bug there must not cost the batch's other messages
                logger.exception("handling %d $CONTROL messages failed", len(items))
        for item in items:
            if item[2]:
                self.ack(item[5], item[2])
        self.counters.system += len(items)
        self.in_flight -= len(items)

    def _write(self, messages: list[str | bytes], items: list[Item], deadline: float | None) -> None:
        for start, end in chunks(messages):
            if not self._write_chunk(messages, items, start, end, deadline):
                return

    def _write_chunk(
        self, messages: list[str | bytes], items: list[Item], start: int, end: int, deadline: float | None
    ) -> bool:
        """Write messages[start:end]; False when the writer gave up (the rest of the batch too)."""
        token = self._next_token()
        room_made = False
        step = end - start  # messages per call; halved when Redis has no room even for the call
        while start < end:
            stop = min(end, start + step)
            try:
                result = self.sink.forward_chunk(messages[start:stop], token, self.history.maxlen())
            except redis_topology.UNREACHABLE as exc:
                # The outcome is unknown: the same token again cannot write twice.
                self._note_outage(exc)
                if self.stop_event.is_set():
                    # Shutting down: keep trying briefly, then give the rest up (counted, and not
                    # acknowledged: the broker redelivers QoS >= 1 ones on the next start).
                    deadline = deadline or time.monotonic() + self.flush_timeout
                    if time.monotonic() > deadline:
                        self._drop(len(messages) - start)
                        return False
                    time.sleep(0.1)
                else:
                    self.backoff.wait(self.stop_event)
                continue
            except redis.RedisError as exc:
                self._refused(items, start, len(messages), str(exc))
                return False
            self._delivered(messages, items, start, start + result.applied)
            self._note_recovery()
            start += result.applied
            token = self._next_token()  # what is left is a new chunk
            if not result.refused:
                continue  # a repeat that had stopped short: send the rest
            if result.out_of_memory and not room_made and self._make_room():
                room_made = True
                continue
            if result.out_of_memory and stop - start > 1:
                # Nothing of ours left to trim, but a call's own arguments count against maxmemory
                # (a 4 MiB call into a 4 MB Redis): try fewer messages at a time before dropping.
                step = max(1, (stop - start) // 2)
                continue
            self._refused(items, start, stop, result.refused)
            start = stop
        return True

    def _ack_each(self, items: list[Item], start: int, end: int) -> None:
        ack = self.ack
        for index in range(start, end):
            item = items[index]
            if item[2]:
                ack(item[5], item[2])

    def _next_token(self) -> str:
        self._token += 1
        return str(self._token)

    def _delivered(self, messages: list[str | bytes], items: list[Item], start: int, end: int) -> None:
        if end <= start:
            return
        self.history.observe(messages, start, end)
        self.ack_items(items, start, end)
        self.counters.forwarded += end - start
        self.in_flight -= end - start

    def _refused(self, items: list[Item], start: int, end: int, error: str) -> None:
        """Redis answered but refused: retrying will not help, so drop, count and acknowledge
        (holding them unacknowledged would stall the broker's delivery to the bridge for good)."""
        self.ack_items(items, start, end)
        self._drop(end - start)
        self._refused_since_log += end - start
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL:
            # At most one line per interval: a full Redis refuses every batch.
            logger.error("Redis refused %d messages (dropped, counted): %s", self._refused_since_log, error)
            self._refused_since_log, self._refusal_logged_at = 0, now

    def _drop(self, count: int) -> None:
        self.counters.dropped_redis += count
        self.in_flight -= count

    def _make_room(self) -> bool:
        """Redis is out of memory: halve the history stream and keep it that short from now on
        (until the bridge restarts). False when there is nothing of ours left to cut."""
        try:
            made = self.sink.make_room()
        except redis.RedisError as exc:
            logger.error("Redis is out of memory and trimming the history failed: %s", exc)
            return False
        if made is None:
            logger.error("Redis is out of memory and mqtt:history has nothing left to give")
            return False
        before, kept = made
        self.history.cap(kept)
        logger.warning(
            "Redis is out of memory: trimmed mqtt:history from %d to about %d entries; it stays at most "
            "that long until the bridge restarts (raise Redis's maxmemory or lower HISTORY_MAX_BYTES)",
            before,
            kept,
        )
        return True

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
