from __future__ import annotations

from bridge.ingest.subscriptions import Subscription, SubscriptionSet, covers
from bridge.insight.topics import TopicIndex, preview


def test_topic_index_counts_and_keeps_the_last_payload() -> None:
    index = TopicIndex()
    index.observe(
        [("a/b", b"1", 0, False, 10.0), ("a/b", b"2", 0, False, 11.0), ("c", b"\xff", 1, True, 12.0)]
    )
    rows = {row["topic"]: row for row in index.snapshot()}
    assert rows["a/b"]["messages"] == 2
    assert rows["a/b"]["last_seen"] == 11.0
    assert rows["a/b"]["last_payload_preview"] == "2"
    assert rows["c"]["retained"] is True
    assert rows["c"]["last_payload_preview"] == "<1 bytes of binary data>"
    assert [row["topic"] for row in index.snapshot()] == ["c", "a/b"]  # most recent first


def test_an_empty_retained_payload_clears_the_retained_flag() -> None:
    index = TopicIndex()
    index.observe([("s", b"on", 0, True, 1.0)])
    index.observe([("s", b"", 0, False, 2.0)])
    assert index.snapshot()[0]["retained"] is False


def test_topic_index_is_bounded_and_evicts_least_recently_seen() -> None:
    index = TopicIndex(max_topics=100)
    index.observe([(f"t/{i}", b"x", 0, False, float(i)) for i in range(150)])
    topics = {row["topic"] for row in index.snapshot()}
    assert len(topics) <= 100
    assert "t/149" in topics and "t/0" not in topics


def test_preview_is_short() -> None:
    assert preview(b"x" * 1000).endswith("…")
    assert len(preview(b"x" * 1000)) == 121


def test_covers() -> None:
    assert covers("#", "a/b")
    assert covers("a/#", "a/+/c")
    assert covers("+/+", "a/b")
    assert not covers("a/+", "a/#")
    assert not covers("#", "$SYS/#")
    assert not covers("a/+/c", "a/b/+")


def _set(*command_filters: str, configured: tuple[str, ...] = ("#",)) -> SubscriptionSet:
    subs = SubscriptionSet(configured, 1)
    for f in command_filters:
        subs.add(Subscription(f, 0, 1.0, "command"))
    return subs


def test_a_filter_covered_by_another_is_not_subscribed_twice() -> None:
    assert _set("sensors/#", "a/+").broker_filters() == [("#", 1)]


def test_sys_filters_ride_on_the_bridges_own_sys_subscription() -> None:
    subs = _set("$SYS/broker/uptime", configured=())
    assert subs.broker_filters() == []
    assert subs.forwards_sys("$SYS/broker/uptime")
    assert not subs.forwards_sys("$SYS/broker/clients/total")
    assert not _set().forwards_sys("$SYS/broker/uptime")


def test_partial_overlaps_are_both_kept() -> None:
    assert sorted(_set("a/+/c", "a/b/+", configured=()).broker_filters()) == [("a/+/c", 0), ("a/b/+", 0)]


def test_the_index_keeps_only_the_head_of_a_large_payload() -> None:
    index = TopicIndex()
    big = ("é" * 1_000_000).encode()  # 2 MB of text, cut inside a two-byte character
    index.observe([("big", big, 0, False, 1.0), ("blob", b"\xff" * 5000, 0, False, 1.0)])
    assert len(index._entries["big"].last_payload) <= 4 * 120
    rows = {row["topic"]: row["last_payload_preview"] for row in index.snapshot()}
    assert rows["big"] == "é" * 120 + "…"
    assert rows["blob"] == "<5,000 bytes of binary data>"
