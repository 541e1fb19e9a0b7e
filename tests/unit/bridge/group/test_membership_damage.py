"""A damaged record in the group's shared hashes never stops the leader's work: the bad value is
reported, counted and replaced (issue 21, defect 9: one bad ``last_seen`` once crashed each
member in turn as it became leader)."""

from __future__ import annotations

import json
import time
from typing import Any

import fakeredis
import pytest

from bridge.contract import protocol
from bridge.contract.redis_values import REJECTED
from bridge.group import membership
from bridge.group.role import GroupRole

UNNAMED = protocol.Names()
GOOD = {"topic": "a/b", "messages": 3, "last_seen": 1_718_000_000.0, "retained": False}


@pytest.mark.parametrize(
    ("bad", "replaced"),
    [
        ({"last_seen": "yesterday"}, {"last_seen": None}),
        ({"last_seen": int("9" * 400)}, {"last_seen": None}),
        ({"last_seen": -1}, {"last_seen": None}),
        ({"messages": "many"}, {"messages": 0}),
        ({"messages": int("9" * 400)}, {"messages": 0}),
        ({"messages": 2.5}, {"messages": 0}),
    ],
)
def test_a_damaged_topic_row_is_replaced_and_the_merge_goes_on(
    r: fakeredis.FakeRedis, bad: dict[str, Any], replaced: dict[str, Any]
) -> None:
    r.hset(protocol.KEY_MEMBER_TOPICS, "a", json.dumps([GOOD]))
    r.hset(protocol.KEY_MEMBER_TOPICS, "b", json.dumps([{**GOOD, "topic": "c/d", **bad}, GOOD]))
    before = REJECTED.count
    merged = {row["topic"]: row for row in membership.merged_topics(r, 100, UNNAMED)}
    assert merged["a/b"]["messages"] == 6  # both members' good rows, added up
    assert {k: merged["c/d"][k] for k in replaced} == replaced
    assert REJECTED.count == before + 1


@pytest.mark.parametrize("raw", ["not json", '{"topic": "x"}', "[[[[" * 5000])
def test_a_members_share_that_is_not_a_list_is_skipped(r: fakeredis.FakeRedis, raw: str) -> None:
    r.hset(protocol.KEY_MEMBER_TOPICS, "a", json.dumps([GOOD]))
    r.hset(protocol.KEY_MEMBER_TOPICS, "b", raw)
    assert [row["topic"] for row in membership.merged_topics(r, 100, UNNAMED)] == ["a/b"]


def test_a_dead_members_damaged_died_at_is_replaced_by_now(r: fakeredis.FakeRedis) -> None:
    r.hset(protocol.KEY_MEMBERS, "gone", json.dumps({"member": "gone", "alive": False, "died_at": "x"}))
    assert membership.prune(r, 5000.0, UNNAMED) == []
    assert membership.read_members(r, UNNAMED)["gone"]["died_at"] == 5000.0
    membership.prune(r, 5000.0 + protocol.MEMBER_FORGET_AFTER + 1, UNNAMED)
    assert membership.read_members(r, UNNAMED) == {}  # forgotten in time, as any dead member


def test_damaged_counters_are_left_out_of_the_groups_sums() -> None:
    members = {
        "a": {"counters": {"received": 5, "forwarded": 5}},
        "b": {"counters": {"received": int("9" * 400), "forwarded": -3, "dropped": "x"}},
        "c": {"counters": {"received": True}},
    }
    totals = membership.group_counters(members)
    assert (totals["received"], totals["forwarded"], totals["dropped"]) == (5, 5, 0)


def test_each_member_that_becomes_leader_with_a_bad_row_in_redis_keeps_leading(
    r: fakeredis.FakeRedis,
) -> None:
    from tests.unit.bridge.conftest import make_housekeeper

    r.hset(protocol.KEY_MEMBER_TOPICS, "ghost", json.dumps([{**GOOD, "last_seen": "yesterday"}]))
    role = GroupRole(r, "g", "a", time.time(), names=UNNAMED)
    keeper = make_housekeeper(r, group=role)
    keeper._tick(time.monotonic())  # takes the lease, announces the merged topics
    topics = protocol.loads_object(r.get(protocol.KEY_TOPICS_LATEST))
    assert role.leading() and topics is not None
    assert [t["topic"] for t in topics["topics"]] == ["a/b"]
