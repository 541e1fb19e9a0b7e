"""Frames: batching, the per-frame cap, and per-client topic filters (pure logic)."""

from __future__ import annotations

import pytest

from bridge.contract.errors import InvalidCommand
from dashboard.frames import EVERYTHING, FrameRouter, normalise_filter, room_for
from tests.unit.dashboard.fakes import message


def topics(frame_data: dict) -> list[str]:
    return [m["topic"] for m in frame_data["messages"]]


def test_messages_between_flushes_arrive_in_one_frame_in_order() -> None:
    router = FrameRouter(frame_max=10)
    router.add_client("a")
    for topic in ("t/1", "t/2", "t/3"):
        router.add(message(topic))

    (frame,) = router.take_frames()

    assert topics(frame.data) == ["t/1", "t/2", "t/3"]
    assert frame.data["skipped"] == 0
    assert frame.room == room_for(EVERYTHING)


def test_nothing_new_means_no_frame() -> None:
    router = FrameRouter(frame_max=10)
    router.add_client("a")
    router.add(message("t/1"))
    router.take_frames()

    assert router.take_frames() == []


def test_a_full_frame_keeps_the_newest_and_counts_the_rest_as_skipped() -> None:
    router = FrameRouter(frame_max=3)
    router.add_client("a")
    for n in range(10):
        router.add(message(f"t/{n}"))

    (frame,) = router.take_frames()

    assert topics(frame.data) == ["t/7", "t/8", "t/9"]
    assert frame.data["skipped"] == 7
    # The next frame starts from zero again.
    router.add(message("t/10"))
    (frame,) = router.take_frames()
    assert topics(frame.data) == ["t/10"]
    assert frame.data["skipped"] == 0


def test_each_filter_gets_only_matching_messages() -> None:
    router = FrameRouter(frame_max=10)
    router.add_client("all")
    router.add_client("kitchen", "home/kitchen/+")
    router.add_client("sensors", "sensors/#")
    for topic in ("home/kitchen/temp", "home/hall/temp", "sensors/a/b", "home/kitchen/temp/raw"):
        router.add(message(topic))

    frames = {frame.topic_filter: topics(frame.data) for frame in router.take_frames()}

    assert frames == {
        EVERYTHING: ["home/kitchen/temp", "home/hall/temp", "sensors/a/b", "home/kitchen/temp/raw"],
        "home/kitchen/+": ["home/kitchen/temp"],
        "sensors/#": ["sensors/a/b"],
    }


def test_clients_sharing_a_filter_share_one_frame() -> None:
    router = FrameRouter(frame_max=10)
    for client in ("a", "b", "c"):
        router.add_client(client, "s/#")
    router.add(message("s/1"))

    (frame,) = router.take_frames()

    assert frame.clients == 3
    assert router.filter_count == 1


def test_a_filter_with_no_clients_left_stops_collecting() -> None:
    router = FrameRouter(frame_max=10)
    router.add_client("a", "s/#")
    router.add(message("s/1"))
    router.remove_client("a")
    router.add(message("s/2"))

    assert router.take_frames() == []
    assert router.client_count == 0


def test_changing_filter_moves_the_client_and_returns_the_old_filter() -> None:
    router = FrameRouter(frame_max=10)
    router.add_client("a")

    old = router.set_filter("a", "x/+")
    router.add(message("x/1"))
    router.add(message("y/1"))

    assert old is EVERYTHING
    assert router.filter_of("a") == "x/+"
    assert [(f.topic_filter, topics(f.data)) for f in router.take_frames()] == [("x/+", ["x/1"])]


def test_wildcards_do_not_match_dollar_topics_but_everything_does() -> None:
    router = FrameRouter(frame_max=10)
    router.add_client("plus", "+/broker/uptime")
    router.add_client("all")
    router.add(message("$SYS/broker/uptime"))

    frames = {f.topic_filter: topics(f.data) for f in router.take_frames()}

    assert frames == {EVERYTHING: ["$SYS/broker/uptime"]}


def test_a_message_without_a_topic_is_ignored() -> None:
    router = FrameRouter(frame_max=10)
    router.add_client("a")
    router.add({"type": "message_received", "payload": "x"})

    assert router.take_frames() == []


@pytest.mark.parametrize("raw", [None, "", "#"])
def test_empty_or_hash_filter_means_everything(raw: object) -> None:
    assert normalise_filter(raw) is EVERYTHING


def test_a_malformed_filter_is_refused_with_the_bridges_words() -> None:
    with pytest.raises(InvalidCommand, match="'#' must be a whole level and the last one"):
        normalise_filter("a/#/b")
    with pytest.raises(InvalidCommand, match="must be a string"):
        normalise_filter(5)


def test_frame_max_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FrameRouter(frame_max=0)
