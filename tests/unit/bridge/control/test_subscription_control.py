"""Per-filter counts, pause/resume against a fake broker, and clearing retained topics."""

from __future__ import annotations

import json

import fakeredis

from bridge.contract import protocol
from bridge.control.commands import CommandProcessor
from bridge.control.retained import RetainedClearer
from bridge.control.subscription_control import FilterStats, SubscriptionPause
from bridge.ingest.counters import Counters
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import Subscription, SubscriptionSet
from bridge.insight.topics import TopicIndex
from tests.unit.bridge.fakes import FakeBroker


def _item(topic: str, payload: bytes, ts: float, retain: bool = False) -> tuple:
    return (topic, payload, 0, retain, ts, 0, False)


def test_each_message_counts_once_for_every_active_filter_that_matches() -> None:
    subs = SubscriptionSet(("#", "sensors/+"), 0)
    stats = FilterStats(subs)

    stats.observe(
        [_item("sensors/a", b"12", 1.0), _item("other", b"1", 2.0), _item("sensors/a", b"345", 3.0)]
    )
    subs.set_paused("sensors/+", True)
    stats.observe([_item("sensors/b", b"9", 4.0)])

    assert stats.snapshot()["filters"] == {
        "#": {"messages": 4, "bytes": 7, "last_message_at": 4.0},
        "sensors/+": {"messages": 2, "bytes": 5, "last_message_at": 3.0},
    }


def test_pause_unsubscribes_keeps_the_filter_listed_and_resume_subscribes_again() -> None:
    r = fakeredis.FakeRedis()
    broker = FakeBroker()
    subs = SubscriptionSet(("#",), 1)
    subs.add(Subscription("alerts/#", 1, 1.0, "command"))
    processor = CommandProcessor(broker, subs, RedisSink(r, 100), Counters())  # type: ignore[arg-type]
    SubscriptionPause(subs, r).register(processor)
    broker.subscribed = dict(subs.broker_filters())

    paused = processor.handle(json.dumps({"type": "cmd_pause_subscription", "id": "p", "topic": "#"}))

    assert paused is not None and paused["ok"] is True
    # "#" covered "alerts/#"; paused, the narrower filter is subscribed in its place
    assert broker.subscribed == {"alerts/#": 1}
    assert [s.filter for s in subs.all()] == ["#", "alerts/#"] and subs.paused() == {"#"}
    assert r.hexists(protocol.KEY_SUBSCRIPTIONS_PAUSED, "#")

    resumed = processor.handle(json.dumps({"type": "cmd_resume_subscription", "id": "r", "topic": "#"}))

    assert resumed is not None and resumed["ok"] is True
    assert broker.subscribed == {"#": 1} and subs.paused() == set()
    assert not r.hexists(protocol.KEY_SUBSCRIPTIONS_PAUSED, "#")


def test_a_saved_pause_is_taken_up_and_a_stale_one_forgotten() -> None:
    r = fakeredis.FakeRedis()
    r.hset(protocol.KEY_SUBSCRIPTIONS_PAUSED, mapping={"#": "{}", "gone/#": "{}"})
    subs = SubscriptionSet(("#",), 0)

    SubscriptionPause(subs, r).load()

    assert subs.paused() == {"#"} and subs.broker_filters() == []
    assert r.hkeys(protocol.KEY_SUBSCRIPTIONS_PAUSED) == [b"#"]


def test_clearing_retained_publishes_empty_retained_messages_to_known_retained_topics_only() -> None:
    broker = FakeBroker()
    index = TopicIndex()
    index.observe(
        [_item("plant/a", b"1", 1.0, retain=True), _item("plant/b", b"2", 1.0), _item("x", b"3", 1.0, True)]
    )
    clearer = RetainedClearer(broker, index)  # type: ignore[arg-type]

    answer = clearer.clear(protocol.Command(type="cmd_clear_retained", topic="plant/#"))

    assert broker.published == [("plant/a", b"", 1, True)]
    assert answer.result is not None and (answer.result["cleared"], answer.result["remaining"]) == (1, 0)
    assert "never seen" in answer.result["note"]
    assert {row["topic"]: row["retained"] for row in index.snapshot()} == {
        "plant/a": False,
        "plant/b": False,
        "x": True,
    }


def test_the_topic_list_carries_the_retained_payload_apart_from_the_last_one() -> None:
    index = TopicIndex()
    index.observe([_item("lamp", b"on", 1.0, retain=True)])
    index.observe([_item("lamp", b"dimmed", 2.0)])

    (row,) = index.snapshot()

    assert (row["retained"], row["retained_payload_preview"], row["last_payload_preview"]) == (
        True,
        "on",
        "dimmed",
    )


def test_unsubscribing_a_paused_filter_ends_its_pause() -> None:
    r = fakeredis.FakeRedis()
    subs = SubscriptionSet(("#",), 1)
    processor = CommandProcessor(FakeBroker(), subs, RedisSink(r, 100), Counters())  # type: ignore[arg-type]
    SubscriptionPause(subs, r).register(processor)
    for kind in ("cmd_subscribe", "cmd_pause_subscription", "cmd_unsubscribe", "cmd_subscribe"):
        answer = processor.handle(json.dumps({"type": kind, "id": kind, "topic": "alerts/#"}))
        assert answer is not None and answer["ok"] is True, answer

    assert subs.paused() == set() and not r.hexists(protocol.KEY_SUBSCRIPTIONS_PAUSED, "alerts/#")


def test_a_members_damaged_counts_are_left_out_of_the_groups_sum() -> None:
    from bridge.control.subscription_control import merged_stats

    good = {
        "filters": {"a/#": {"messages": 2, "bytes": 20, "last_message_at": 1_718_000_000.0}},
        "since": 1.0,
    }
    bad = {
        "filters": {"a/#": {"messages": int("9" * 400), "bytes": -1, "last_message_at": float("inf")}},
        "since": float("inf"),
    }
    merged = merged_stats([good, bad])
    assert merged == {
        "filters": {"a/#": {"messages": 2, "bytes": 20, "last_message_at": 1_718_000_000.0}},
        "since": 1.0,
    }
    json.loads(protocol.dumps(merged), parse_constant=lambda name: 1 / 0)  # no Infinity in it
