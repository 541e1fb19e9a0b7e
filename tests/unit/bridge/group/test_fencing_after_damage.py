"""The leader lease and its fencing when Redis lost its data or holds damaged values: tokens
never go backwards, a lease without a TTL runs out, a token no lease issued is written over."""

from __future__ import annotations

import json

import fakeredis
import pytest

from bridge.contract import protocol
from bridge.contract.redis_values import REJECTED
from bridge.group.fencing import FencedAnnouncer
from bridge.group.lease import LeaderLease, read_leader
from tests.helpers import wait_for

UNNAMED = protocol.Names()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _stats(r: fakeredis.FakeRedis) -> dict[str, object]:
    found = protocol.loads_object(r.get(protocol.KEY_STATS_LATEST))
    assert found is not None
    return found


def test_a_leader_after_redis_restarted_empty_writes_again(r: fakeredis.FakeRedis) -> None:
    r.set(protocol.KEY_LEADER_TOKEN, 13)  # a group that has seen 13 leaders
    clock = Clock()
    a, b = LeaderLease(r, "a", names=UNNAMED, clock=clock), LeaderLease(r, "b", names=UNNAMED, clock=clock)
    announcer = FencedAnnouncer(r, UNNAMED)
    assert a.tick() is True and a.token is not None
    old = a.token
    r.flushall()  # Redis restarted without its data: the counter is gone with the rest
    # a has not noticed yet (its renewal is due in 2 s) and writes the stats with its token...
    assert announcer.announce(protocol.CHANNEL_STATS, {"data": {"by": "a"}}, old)
    assert b.tick() is True and b.token is not None  # b finds the lease free and takes it
    assert a.tick() is False  # a's renewal finds b's lease: it steps down
    assert b.token > old  # the new lease's token is larger, though the counter started afresh
    assert announcer.announce(protocol.CHANNEL_STATS, {"data": {"by": "b"}}, b.token)
    assert _stats(r)["data"] == {"by": "b"} and _stats(r)["leader_token"] == b.token
    # and fencing still works the other way: the old leader's late write is refused
    assert announcer.announce(protocol.CHANNEL_STATS, {"data": {"by": "a"}}, old) is False


def test_tokens_keep_growing_one_lease_after_another(r: fakeredis.FakeRedis) -> None:
    clock = Clock()
    tokens = []
    for member in ("a", "b", "c", "d"):
        lease = LeaderLease(r, member, names=UNNAMED, clock=clock)
        assert lease.tick() is True and lease.token is not None
        tokens.append(lease.token)
        lease.release()
    assert tokens == sorted(set(tokens))
    assert tokens[-1] < 2**53  # exact in a browser's JSON.parse too
    assert int(r.get(protocol.KEY_LEADER_TOKEN)) == tokens[-1]


def test_a_lease_without_a_ttl_runs_out_and_the_group_gets_a_leader(r: fakeredis.FakeRedis) -> None:
    # Left by hand (or by a restore): without a TTL nobody would ever lead again.
    r.set(protocol.KEY_LEADER, json.dumps({"member": "ghost", "token": 5}))
    before = REJECTED.count
    lease = LeaderLease(r, "b", names=UNNAMED, ttl=0.3, margin=0.05)
    assert lease.tick() is False
    assert 0 < r.pttl(protocol.KEY_LEADER) <= 300  # it runs out now, unless its holder renews it
    assert REJECTED.count == before + 1
    wait_for(lease.tick, 3, interval=0.05, what="b to lead once the ghost's lease ran out")
    assert read_leader(r, UNNAMED)["member"] == "b"  # type: ignore[index]


def test_a_lease_of_the_wrong_kind_runs_out_too(r: fakeredis.FakeRedis) -> None:
    r.hset(protocol.KEY_LEADER, "member", "ghost")
    lease = LeaderLease(r, "b", names=UNNAMED, ttl=0.3, margin=0.05)
    assert lease.tick() is False
    wait_for(lease.tick, 3, interval=0.05, what="b to lead")


@pytest.mark.parametrize("huge", ["1" + "0" * 30, "9" * 400])
def test_a_latest_key_with_a_token_no_lease_issued_is_written_over(r: fakeredis.FakeRedis, huge: str) -> None:
    r.set(protocol.KEY_STATS_LATEST, '{"type":"stats_update","data":{},"leader_token":' + huge + "}")
    lease = LeaderLease(r, "a", names=UNNAMED, clock=Clock())
    assert lease.tick() is True and lease.token is not None
    before = REJECTED.count
    announcer = FencedAnnouncer(r, UNNAMED)
    assert announcer.announce(protocol.CHANNEL_STATS, {"data": {"fresh": 1}}, lease.token) is True
    assert _stats(r)["leader_token"] == lease.token and _stats(r)["data"] == {"fresh": 1}
    assert REJECTED.count == before + 1
    assert announcer.refused == 0


@pytest.mark.parametrize("damage", ["not a number", "9" * 400, "-5", "1e999"])
def test_a_damaged_token_counter_is_seeded_from_redis_clock(r: fakeredis.FakeRedis, damage: str) -> None:
    r.set(protocol.KEY_LEADER_TOKEN, damage)
    before = REJECTED.count
    lease = LeaderLease(r, "a", names=UNNAMED, clock=Clock())
    assert lease.tick() is True and lease.token is not None
    seconds, micros = r.time()
    assert 0 < seconds * 1_000_000 + micros - lease.token < 60_000_000  # from the clock, just now
    assert REJECTED.count == before + 1


def test_a_token_counter_of_the_wrong_kind_is_replaced(r: fakeredis.FakeRedis) -> None:
    r.rpush(protocol.KEY_LEADER_TOKEN, "x")
    lease = LeaderLease(r, "a", names=UNNAMED, clock=Clock())
    assert lease.tick() is True and lease.token is not None
    assert int(r.get(protocol.KEY_LEADER_TOKEN)) == lease.token


def test_tokens_from_before_this_change_are_below_the_new_ones(r: fakeredis.FakeRedis) -> None:
    # A group upgraded in place: its counter holds a small number, its :latest keys small tokens.
    r.set(protocol.KEY_LEADER_TOKEN, 41)
    r.set(protocol.KEY_STATS_LATEST, '{"type":"stats_update","data":{},"leader_token":41}')
    lease = LeaderLease(r, "a", names=UNNAMED, clock=Clock())
    lease.tick()
    assert lease.token is not None and lease.token > 41
    assert FencedAnnouncer(r, UNNAMED).announce(protocol.CHANNEL_STATS, {"data": {}}, lease.token)
