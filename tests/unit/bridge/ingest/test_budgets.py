"""Byte budgets on the data path: the queue, a message's payload and properties (cut before they
are queued, and said so in the message), and the history stream (one large message never wipes
it)."""

from __future__ import annotations

import dataclasses
import json
import threading

import fakeredis
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.config import Settings
from bridge.contract import protocol
from bridge.contract.backoff import NoWait
from bridge.ingest import writer as writer_module
from bridge.ingest.budgets import HistoryBudget, cap_properties
from bridge.ingest.counters import Counters
from bridge.ingest.mqtt_source import MqttSource
from bridge.ingest.queue import IngestQueue, take
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import SubscriptionSet
from bridge.ingest.writer import Writer
from bridge.insight.topics import TopicIndex
from tests.helpers import wait_for

MiB = 1024 * 1024


def _message(
    topic: str, payload: bytes, qos: int = 0, properties: Properties | None = None
) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(topic=topic.encode())
    msg.payload, msg.qos = payload, qos
    if properties is not None:
        msg.properties = properties
    return msg


def _source(settings: Settings, items: IngestQueue, counters: Counters) -> MqttSource:
    return MqttSource(settings, counters, items, settings.queue_maxsize, lambda event: None, lambda: [])


def _writer(r: fakeredis.FakeRedis, items: IngestQueue, counters: Counters, settings: Settings) -> Writer:
    return Writer(
        items,
        RedisSink(r, history_maxlen=settings.history_maxlen),
        counters,
        TopicIndex(),
        lambda batch: None,
        SubscriptionSet(("#",), 0).forwards_sys,
        threading.Event(),
        backoff=NoWait(),
        payload_max_bytes=settings.payload_max_bytes,
        history_max_bytes=settings.history_max_bytes,
    )


def _history(r: fakeredis.FakeRedis) -> list[dict]:
    return [json.loads(fields[b"data"]) for _, fields in r.xrange(protocol.KEY_HISTORY)]


# --- the queue --------------------------------------------------------------------------
def test_the_queue_holds_at_most_its_bytes_and_takes_more_once_the_writer_drained(settings: Settings) -> None:
    settings = dataclasses.replace(settings, queue_max_bytes=MiB)
    items = IngestQueue(settings.queue_max_bytes)
    counters = Counters()
    source = _source(settings, items, counters)
    for _ in range(20):  # 5 MiB of 256 KB messages into a 1 MiB queue
        source._on_message(source.client, None, _message("big/burst", b"b" * 256 * 1024))
    assert len(items) == 3  # 3 x (256 KiB + topic + overhead) fit in 1 MiB; a fourth does not
    assert (counters.received, counters.dropped_queue) == (20, 17)
    assert items.budget.queued_bytes <= MiB

    take(items, 1000, 1 << 62)  # the writer took them
    assert items.budget.queued_bytes == 0
    source._on_message(source.client, None, _message("big/burst", b"b" * 256 * 1024))
    assert len(items) == 1 and counters.dropped_queue == 17


def test_the_compiled_reader_keeps_the_same_budget(settings: Settings) -> None:
    settings = dataclasses.replace(settings, queue_max_bytes=MiB)
    items = IngestQueue(settings.queue_max_bytes)
    counters = Counters()
    source = _source(settings, items, counters)
    burst = [("big/burst", b"b" * 256 * 1024, 0, False, 1.0, 0, False) for _ in range(20)]
    source._on_items(burst)
    assert (len(items), counters.received, counters.dropped_queue) == (3, 20, 17)


def test_qos1_messages_may_pass_the_byte_budget_once_more_then_wait_for_redelivery(
    settings: Settings,
) -> None:
    settings = dataclasses.replace(settings, queue_max_bytes=MiB)
    items = IngestQueue(settings.queue_max_bytes)
    counters = Counters()
    source = _source(settings, items, counters)
    for mid in range(1, 21):
        msg = _message("q1", b"b" * 256 * 1024, qos=1)
        msg.mid = mid
        source._on_message(source.client, None, msg)
    assert len(items) == 7  # twice the budget, at most
    assert counters.dropped_queue == 13


# --- payloads and properties cut before queueing -------------------------------------------
def test_a_large_payload_is_cut_before_it_is_queued_and_the_message_says_so(
    settings: Settings, r: fakeredis.FakeRedis
) -> None:
    items = IngestQueue(settings.queue_max_bytes)
    counters = Counters()
    source = _source(settings, items, counters)
    source._on_message(source.client, None, _message("huge", b"h" * (10 * MiB)))
    assert len(items[0][1]) == settings.payload_max_bytes  # only the cut payload waits in memory
    assert items.budget.queued_bytes < 2 * MiB

    _writer(r, items, counters, settings).process(take(items, 1000, 1 << 62))
    stored = _history(r)[0]
    assert stored["truncated"] is True and stored["size"] == 10 * MiB
    assert len(stored["payload"]) == settings.payload_max_bytes


def test_huge_user_properties_are_cut_and_the_message_says_so(
    settings: Settings, r: fakeredis.FakeRedis
) -> None:
    settings = dataclasses.replace(settings, protocol=5)
    items = IngestQueue(settings.queue_max_bytes)
    counters = Counters()
    source = _source(settings, items, counters)
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = "text/plain"
    properties.UserProperty = [("first", "kept")] + [(f"k{i}", "v" * 10_000) for i in range(3_000)]  # 30 MB
    source._on_message(source.client, None, _message("props", b"p", properties=properties))

    _writer(r, items, counters, settings).process(take(items, 1000, 1 << 62))
    (stored,) = _history(r)
    assert len(json.dumps(stored["properties"])) <= settings.properties_max_bytes + 100
    assert stored["properties"]["content_type"] == "text/plain"
    assert stored["properties"]["user_properties"][0] == ["first", "kept"]
    assert stored["properties_truncated"] is True
    assert stored["properties_size"] > 30_000_000
    assert counters.forwarded == 1


def test_small_properties_pass_whole_and_unflagged() -> None:
    small = {"content_type": "a", "user_properties": [["k", "v"]]}
    assert cap_properties(small, 1024) == (small, None)
    cut, size = cap_properties({"response_topic": "r" * 5000, "content_type": "a"}, 1024)
    assert cut == {"content_type": "a"} and size is not None and size > 5000


# --- the history ------------------------------------------------------------------------
def test_one_large_message_never_wipes_the_history(settings: Settings, r: fakeredis.FakeRedis) -> None:
    """Issue 21.6: a 10 MB publish (cut to 1 MiB) shrank a 3,003-entry history to 74 entries."""
    settings = dataclasses.replace(settings, history_maxlen=10_000, history_max_bytes=64 * MiB)
    items = IngestQueue(settings.queue_max_bytes)
    counters = Counters()
    source = _source(settings, items, counters)
    writer = _writer(r, items, counters, settings)
    for index in range(3_003):
        source._on_message(
            source.client, None, _message(f"sensors/{index % 50}", b'{"t": 21.5, "n": %d}' % index)
        )
    writer.process(take(items, 10_000, 1 << 62))
    source._on_message(source.client, None, _message("huge", b"h" * (10 * MiB)))
    writer.process(take(items, 10_000, 1 << 62))
    for index in range(100):  # and the cap does not linger either
        source._on_message(source.client, None, _message("after", b"%d" % index))
        writer.process(take(items, 10_000, 1 << 62))
    assert r.xlen(protocol.KEY_HISTORY) == 3_003 + 1 + 100


def test_a_large_message_in_a_full_history_evicts_about_its_own_bytes() -> None:
    budget = HistoryBudget(maxlen=100_000, max_bytes=MiB)
    small = ["s" * 200] * 10_000  # 2 MB written: the newest ~5,200 fit
    budget.observe(small, 0, len(small))
    before = budget.maxlen()
    assert 5_000 <= before <= 5_300
    budget.observe(["L" * 100_000], 0, 1)  # 100 kB: about 500 small ones make room for it
    assert before - 520 <= budget.maxlen() <= before - 480


def test_the_writer_sleeps_until_a_message_is_queued_not_on_a_clock(
    settings: Settings, r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the writer's longest sleep set to a minute, a message still reaches Redis at once:
    queueing it wakes the writer (issue 23.3: no 10 ms pause between batches)."""
    monkeypatch.setattr(writer_module, "WAKE_TIMEOUT", 60.0)
    items = IngestQueue(settings.queue_max_bytes)
    counters = Counters()
    source = _source(settings, items, counters)
    writer = _writer(r, items, counters, settings)
    writer.start()
    try:
        wait_for(lambda: writer.budget is not None and writer.budget._sleeping, 5, what="the writer asleep")
        source._on_message(source.client, None, _message("wake/up", b"now"))
        wait_for(lambda: r.xlen(protocol.KEY_HISTORY) == 1, 5, what="the message in Redis")
        # told to the topic index once the writer falls idle (small batches are counted together)
        index = writer.topic_index
        assert isinstance(index, TopicIndex)
        wait_for(lambda: [t["topic"] for t in index.snapshot()] == ["wake/up"], 5, what="the topic index")
    finally:
        writer.stop_event.set()
        writer.budget.wake()  # type: ignore[union-attr]
        writer.join(5)
    assert counters.forwarded == 1


def test_with_a_linger_messages_queued_meanwhile_go_in_one_call(
    settings: Settings, r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WRITER_LINGER_MS: after a pass, the writer waits, so what was queued meanwhile is one call."""
    items = IngestQueue(settings.queue_max_bytes)
    counters = Counters()
    source = _source(settings, items, counters)
    writer = _writer(r, items, counters, settings)
    writer.linger = 2.0
    calls: list[int] = []
    real = writer.sink.forward_chunk

    def counting(messages, token, maxlen=None):  # type: ignore[no-untyped-def]
        calls.append(len(messages))
        return real(messages, token, maxlen)

    monkeypatch.setattr(writer.sink, "forward_chunk", counting)
    writer.start()
    try:
        source._on_message(source.client, None, _message("linger", b"1"))
        wait_for(lambda: r.xlen(protocol.KEY_HISTORY) == 1, 5, what="the first message")
        for payload in (b"2", b"3", b"4"):  # while the writer lingers
            source._on_message(source.client, None, _message("linger", payload))
        wait_for(lambda: r.xlen(protocol.KEY_HISTORY) == 4, 10, what="the others")
    finally:
        writer.stop_event.set()
        writer.budget.wake()  # type: ignore[union-attr]
        writer.join(5)
    assert calls == [1, 3]
