"""The ingest path without sockets: paho callback -> bounded deque -> writer -> (fake) Redis."""

from __future__ import annotations

import json
import threading
from collections import deque

import fakeredis
import paho.mqtt.client as mqtt
import redis

from bridge.config import Settings
from bridge.contract import protocol
from bridge.contract.backoff import NoWait
from bridge.ingest.counters import Counters
from bridge.ingest.mqtt_source import Item, MqttSource
from bridge.ingest.redis_sink import ChunkResult, RedisSink
from bridge.ingest.subscriptions import SubscriptionSet
from bridge.ingest.writer import HistoryBudget, Writer, drain
from bridge.insight.topics import TopicIndex


def _message(topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(topic=topic.encode())
    msg.payload, msg.qos, msg.retain = payload, qos, retain
    return msg


def _source(settings: Settings, items: deque[Item], counters: Counters, maxsize: int) -> MqttSource:
    return MqttSource(settings, counters, items, maxsize, lambda event: None, lambda: [])


def _writer(
    r: fakeredis.FakeRedis, items: deque[Item], counters: Counters, subs: SubscriptionSet | None = None
):
    system: list[Item] = []
    subs = subs or SubscriptionSet(("#",), 0)
    writer = Writer(
        items,
        RedisSink(r, history_maxlen=1000),
        counters,
        TopicIndex(),
        system.extend,
        subs.forwards_sys,
        threading.Event(),
        backoff=NoWait(),
    )
    return writer, system


def _history(r: fakeredis.FakeRedis) -> list[dict]:
    return [json.loads(fields[b"data"]) for _, fields in r.xrange(protocol.KEY_HISTORY)]


def test_messages_reach_pubsub_and_history_intact_and_in_order(
    settings: Settings, r: fakeredis.FakeRedis
) -> None:
    items: deque[Item] = deque()
    counters = Counters()
    source = _source(settings, items, counters, maxsize=1000)
    listener = r.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(protocol.CHANNEL_MESSAGES)
    sent = [("t/a", f"m{i}".encode()) for i in range(50)] + [("t/bin", b"\x00\xff\xfe")]
    for topic, payload in sent:
        source._on_message(source.client, None, _message(topic, payload, qos=1))
    writer, _ = _writer(r, items, counters)
    writer.process(drain(items, 1000))

    published = []
    for _ in range(200):
        msg = listener.get_message(timeout=0.001)
        if msg is not None:
            published.append(json.loads(msg["data"]))
    assert [(m["topic"], protocol.decode_payload(m["payload"], m["encoding"])) for m in published] == sent
    assert published[-1]["encoding"] == "base64"
    assert _history(r) == published
    assert (counters.received, counters.forwarded, counters.dropped) == (51, 51, 0)


def test_full_queue_drops_and_counts_instead_of_blocking(settings: Settings) -> None:
    items: deque[Item] = deque()
    counters = Counters()
    source = _source(settings, items, counters, maxsize=100)
    for i in range(130):
        source._on_message(source.client, None, _message("t", str(i).encode()))
    assert len(items) == 100
    assert (counters.received, counters.dropped) == (130, 30)
    assert items[0][1] == b"0"  # the oldest are kept: what was dropped is what arrived late


def test_drain_takes_batches_in_order() -> None:
    items: deque[Item] = deque(("t", str(i).encode(), 0, False, 0.0, 0, False) for i in range(2500))
    first = drain(items, 1000)
    assert len(first) == 1000 and first[0][1] == b"0" and len(items) == 1500


def test_sys_messages_feed_stats_and_are_not_forwarded_by_default(r: fakeredis.FakeRedis) -> None:
    items: deque[Item] = deque(
        [("$SYS/broker/uptime", b"5 seconds", 0, False, 1.0, 0, False), ("a", b"x", 0, False, 1.0, 0, False)]
    )
    writer, system = _writer(r, items, Counters())
    writer.process(drain(items, 10))
    assert [i[0] for i in system] == ["$SYS/broker/uptime"]
    assert [m["topic"] for m in _history(r)] == ["a"]


def test_sys_messages_are_forwarded_when_a_sys_filter_is_subscribed(r: fakeredis.FakeRedis) -> None:
    items: deque[Item] = deque([("$SYS/broker/uptime", b"5 seconds", 0, False, 1.0, 0, False)])
    writer, system = _writer(r, items, Counters(), SubscriptionSet(("#", "$SYS/broker/#"), 0))
    writer.process(drain(items, 10))
    assert len(system) == 1
    assert [m["topic"] for m in _history(r)] == ["$SYS/broker/uptime"]


def test_history_is_trimmed_near_maxlen(r: fakeredis.FakeRedis) -> None:
    items: deque[Item] = deque(("t", b"x", 0, False, 0.0, 0, False) for _ in range(5000))
    writer, _ = _writer(r, items, Counters())
    while items:
        writer.process(drain(items, 1000))
    assert 1000 <= r.xlen(protocol.KEY_HISTORY) < 2000  # MAXLEN ~ trims in whole nodes


def test_a_redis_outage_is_survived_and_nothing_is_lost(
    server: fakeredis.FakeServer, r: fakeredis.FakeRedis
) -> None:
    items: deque[Item] = deque([("t", b"during outage", 0, False, 1.0, 0, False)])
    counters = Counters()
    writer, _ = _writer(r, items, counters)
    server.connected = False
    attempts = 0
    original_wait = writer.backoff.wait

    def wait_then_recover(stop: threading.Event) -> bool:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            server.connected = True
        return original_wait(stop)

    writer.backoff.wait = wait_then_recover  # type: ignore[method-assign]
    writer.process(drain(items, 10))
    assert attempts == 3
    assert [m["payload"] for m in _history(r)] == ["during outage"]
    assert (counters.forwarded, counters.dropped) == (1, 0)


def test_a_batch_redis_refuses_is_dropped_and_counted(r: fakeredis.FakeRedis) -> None:
    r.set(protocol.KEY_HISTORY, "not a stream")  # XADD will fail with WRONGTYPE
    items: deque[Item] = deque([("t", b"x", 0, False, 1.0, 0, False), ("t", b"y", 0, False, 1.0, 0, False)])
    counters = Counters()
    writer, _ = _writer(r, items, counters)
    writer.process(drain(items, 10))
    assert counters.dropped == 2
    writer.process([("t", b"z", 0, False, 1.0, 0, False)])  # and the writer keeps going
    assert counters.dropped == 3


def test_writer_thread_flushes_the_queue_on_stop(r: fakeredis.FakeRedis) -> None:
    items: deque[Item] = deque(("t", str(i).encode(), 0, False, 0.0, 0, False) for i in range(3000))
    counters = Counters()
    writer, _ = _writer(r, items, counters)
    writer.stop_event.set()
    writer.start()
    writer.join(5)
    assert not writer.is_alive()
    assert counters.forwarded == 3000
    assert r.xlen(protocol.KEY_HISTORY) >= 1000


def _big(n: int, size: int = 1_000_000, qos: int = 0) -> list[Item]:
    return [("big", (str(i) * size)[:size].encode(), qos, False, 1.0, i + 1, False) for i in range(n)]


def test_a_split_batch_is_not_written_twice_when_a_reply_is_lost(r: fakeredis.FakeRedis) -> None:
    """Six ~1 MB messages take two script calls; the second call's reply is lost after Redis ran
    it. Before, the whole batch was sent again: 12 history entries instead of 6."""
    counters = Counters()
    acked: list[int] = []
    writer, _ = _writer(r, deque(), counters)
    writer.ack = lambda mid, qos: acked.append(mid)
    calls = 0
    real = writer.sink.forward_chunk

    def lose_second_reply(messages, token, maxlen=None):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        result = real(messages, token, maxlen)
        if calls == 2:
            raise redis.ConnectionError("reply lost")
        return result

    writer.sink.forward_chunk = lose_second_reply  # type: ignore[method-assign]
    writer.process(_big(6, qos=1))
    assert calls == 3  # the lost one was sent again ...
    assert [m["payload"][0] for m in _history(r)] == list("012345")  # ... and written once
    assert (counters.forwarded, counters.dropped, writer.in_flight) == (6, 0, 0)
    assert acked == [1, 2, 3, 4, 5, 6]  # each acknowledged once, after its write


def test_a_refusal_half_way_counts_exactly_what_was_written(r: fakeredis.FakeRedis) -> None:
    counters = Counters()
    acked: list[int] = []
    writer, _ = _writer(r, deque(), counters)
    writer.ack = lambda mid, qos: acked.append(mid)
    real = writer.sink.forward_chunk
    calls = 0

    def break_the_stream_after_the_first_call(messages, token, maxlen=None):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            r.delete(protocol.KEY_HISTORY)
            r.set(protocol.KEY_HISTORY, "not a stream")  # XADD now fails with WRONGTYPE
        return real(messages, token, maxlen)

    writer.sink.forward_chunk = break_the_stream_after_the_first_call  # type: ignore[method-assign]
    writer.process(_big(6, qos=1))
    assert counters.forwarded == 4  # the first call took four ~1 MB messages (4 MiB per call)
    assert counters.dropped_redis == 2
    assert writer.in_flight == 0
    assert acked == [1, 2, 3, 4, 5, 6]  # refused for good: acknowledged, so the broker moves on


def test_nothing_unwritten_is_acknowledged(server: fakeredis.FakeServer, r: fakeredis.FakeRedis) -> None:
    counters = Counters()
    acked: list[int] = []
    writer, _ = _writer(r, deque(), counters)
    writer.ack = lambda mid, qos: acked.append(mid)
    writer.flush_timeout = 0.2
    writer.stop_event.set()  # shutting down with Redis away: give up after the flush timeout
    server.connected = False
    writer.process([("t", b"a", 1, False, 1.0, 7, False), ("t", b"b", 0, False, 1.0, 0, False)])
    assert acked == []  # the broker keeps message 7 and delivers it again on the next start
    assert (counters.forwarded, counters.dropped_redis, writer.in_flight) == (0, 2, 0)


def test_counters_add_up_with_sys_messages_and_drops(settings: Settings, r: fakeredis.FakeRedis) -> None:
    items: deque[Item] = deque()
    counters = Counters()
    source = _source(settings, items, counters, maxsize=100)
    writer, _ = _writer(r, items, counters)
    counters.queue_depth = lambda: len(items) + writer.in_flight
    for i in range(120):
        source._on_message(source.client, None, _message("t" if i % 3 else "$SYS/broker/uptime", b"1"))
    writer.process(drain(items, 50))
    snap = counters.snapshot()
    assert snap["system"] > 0 and snap["dropped"] == 20 and snap["queue_depth"] == 50
    assert snap["received"] == snap["forwarded"] + snap["dropped"] + snap["queue_depth"] + snap["system"]


def test_dup_is_present_only_on_redeliveries(r: fakeredis.FakeRedis) -> None:
    writer, _ = _writer(r, deque(), Counters())
    writer.process([("t", b"new", 1, False, 1.0, 1, False), ("t", b"again", 1, False, 1.0, 2, True)])
    first, second = _history(r)
    assert "dup" not in first
    assert second["dup"] is True


def test_history_budget_follows_the_byte_cap_and_an_oom_cap() -> None:

    budget = HistoryBudget(maxlen=10_000, max_bytes=1_000_000)
    assert budget.maxlen() == 10_000  # nothing seen yet
    budget.observe(["x" * 10_000] * 5, 0, 5)
    assert budget.maxlen() == 10_000  # 50 kB written: the byte cap is far away
    budget.observe(["x" * 10_000] * 200, 0, 200)
    assert budget.maxlen() == 100  # 2 MB written: 1 MB holds the newest 100
    budget.observe(["x" * 100] * 5, 0, 5)
    assert 100 < budget.maxlen() < 110  # small ones push out only their own bytes' worth
    budget.cap(40)
    assert budget.maxlen() == 40
    assert HistoryBudget(maxlen=0, max_bytes=1000).maxlen() == 0  # history off stays off
    unbounded = HistoryBudget(maxlen=500, max_bytes=0)
    unbounded.observe(["x" * 10_000], 0, 1)
    assert unbounded.maxlen() == 500


def test_the_writer_keeps_the_history_within_its_byte_budget(r: fakeredis.FakeRedis) -> None:
    writer, _ = _writer(r, deque(), Counters())
    writer.history = HistoryBudget(100_000, 200_000)
    for _ in range(10):
        writer.process([("t", b"z" * 10_000, 0, False, 1.0, 0, False)] * 10)
    stored = sum(len(f[b"data"]) for _, f in r.xrange(protocol.KEY_HISTORY))
    assert stored <= 300_000


def test_a_call_too_big_for_a_full_redis_is_sent_in_smaller_pieces(r: fakeredis.FakeRedis) -> None:
    """A 4 MB Redis with an empty history refuses a 4 MiB call for memory (its own arguments count
    against maxmemory): there is nothing to trim, so fewer messages a call, not a dropped batch."""
    counters = Counters()
    writer, _ = _writer(r, deque(), counters)
    real = writer.sink.forward_chunk
    sizes: list[int] = []

    def refuse_calls_over_2_mb(messages, token, maxlen=None):  # type: ignore[no-untyped-def]
        sizes.append(len(messages))
        if sum(len(m) for m in messages) > 2_000_000:
            return ChunkResult(0, "OOM command not allowed when used memory > 'maxmemory'.", False)
        return real(messages, token, maxlen)

    writer.sink.forward_chunk = refuse_calls_over_2_mb  # type: ignore[method-assign]
    writer.process(_big(4))

    assert [m["payload"][0] for m in _history(r)] == list("0123")
    assert (counters.forwarded, counters.dropped) == (4, 0)
    assert sizes[0] == 4 and max(sizes[1:]) <= 2


def test_a_message_too_big_for_a_full_redis_alone_is_dropped_and_the_rest_written(
    r: fakeredis.FakeRedis,
) -> None:
    counters = Counters()
    writer, _ = _writer(r, deque(), counters)
    real = writer.sink.forward_chunk

    def refuse_message_2(messages, token, maxlen=None):  # type: ignore[no-untyped-def]
        if any(json.loads(m)["payload"].startswith("2") for m in messages):
            return ChunkResult(0, "OOM command not allowed when used memory > 'maxmemory'.", False)
        return real(messages, token, maxlen)

    writer.sink.forward_chunk = refuse_message_2  # type: ignore[method-assign]
    writer.process(_big(4, size=1000))

    # 0 and 1 went in; then the refusals trimmed the history to make room (0 went), 2 alone was
    # still refused and dropped, 3 went in.
    assert [m["payload"][0] for m in _history(r)] == list("13")
    assert (counters.forwarded, counters.dropped) == (3, 1)
    assert writer.in_flight == 0
