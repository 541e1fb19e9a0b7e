"""Bridge group (BRIDGE_GROUP): settings, the leader lease and its fencing, leader-only work,
act-once commands and the member list, over fakeredis."""

from __future__ import annotations

import json
import time
from typing import Any

import fakeredis
import pytest

from bridge.config import Settings
from bridge.contract import protocol
from bridge.contract.errors import ConfigError, InvalidCommand
from bridge.control.broker_settings import SOURCE_ENVIRONMENT
from bridge.control.commands import CommandProcessor
from bridge.control.connection_commands import ConnectionCommands
from bridge.control.subscription_control import FilterStats, SubscriptionPause
from bridge.group import membership
from bridge.group.fencing import FencedAnnouncer
from bridge.group.filters import overlap_sentence
from bridge.group.lease import LeaderLease, read_leader
from bridge.group.role import GroupRole
from bridge.ingest.counters import Counters
from bridge.ingest.mqtt_source import LinkEvent
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import SubscriptionSet, shared, unshared
from bridge.insight.housekeeping import Housekeeper
from tests.unit.bridge.conftest import make_housekeeper
from tests.unit.bridge.fakes import FakeBroker

UNNAMED = protocol.Names()  # the unnamed bridge's names


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- settings ------------------------------------------------------------------------------


def test_without_bridge_group_the_settings_are_todays() -> None:
    s = Settings.from_env({"MQTT_CLIENT_ID": "one"})
    assert (s.group, s.member) == (None, "one")


def test_group_member_defaults_to_the_client_id() -> None:
    s = Settings.from_env({"BRIDGE_GROUP": "g", "MQTT_CLIENT_ID": "bridge-a"})
    assert (s.group, s.member) == ("g", "bridge-a")
    s = Settings.from_env({"BRIDGE_GROUP": "g", "BRIDGE_MEMBER": "east-1"})
    assert s.member == "east-1"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"BRIDGE_GROUP": "a/b"}, "BRIDGE_GROUP must be a short name"),
        ({"BRIDGE_GROUP": "g", "MQTT_TOPICS": "sensors/#,sensors/+/temp"}, "overlaps"),
        ({"BRIDGE_GROUP": "g", "MQTT_PROTOCOL": "3.1.1"}, "MQTT_PROTOCOL=5"),
    ],
)
def test_bad_group_settings_fail_with_one_sentence(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Settings.from_env(env)


def test_overlapping_topics_are_fine_without_a_group() -> None:
    assert Settings.from_env({"MQTT_TOPICS": "sensors/#,sensors/+/temp"}).group is None


def test_data_filters_are_shared_and_sys_is_not() -> None:
    assert shared("g", "sensors/#") == "$share/g/sensors/#"
    assert shared("g", "$SYS/#") == "$SYS/#"
    # the answers to the leader's dynamic-security requests must all reach it, never a share
    assert shared("g", "$CONTROL/dynamic-security/v1/response") == "$CONTROL/dynamic-security/v1/response"
    assert unshared("g", "$share/g/sensors/#") == "sensors/#"
    assert overlap_sentence("a/+", ["a/b", "c/#"]) is not None
    assert overlap_sentence("a/+", ["c/#", "$SYS/#"]) is None


# --- the lease -----------------------------------------------------------------------------


def test_one_member_leads_and_the_other_waits(r: fakeredis.FakeRedis) -> None:
    clock = Clock()
    a, b = LeaderLease(r, "a", names=UNNAMED, clock=clock), LeaderLease(r, "b", names=UNNAMED, clock=clock)
    assert a.tick() is True
    assert b.tick() is False
    leader = read_leader(r, UNNAMED)
    assert leader is not None and leader["member"] == "a" and leader["token"] == a.token
    assert 0 < r.pttl(protocol.KEY_LEADER) <= 6000
    clock.now += 2
    assert a.tick() is True and b.tick() is False


def test_lease_lost_in_redis_is_noticed_and_taken_over_with_a_larger_token(r: fakeredis.FakeRedis) -> None:
    clock = Clock()
    a, b = LeaderLease(r, "a", names=UNNAMED, clock=clock), LeaderLease(r, "b", names=UNNAMED, clock=clock)
    a.tick()
    first = a.token
    r.delete(protocol.KEY_LEADER)  # the lease expired (or Redis restarted empty)
    assert b.tick() is True
    assert a.tick() is False  # its renewal finds b's lease: a steps down
    assert b.token is not None and first is not None and b.token > first
    assert read_leader(r, UNNAMED)["member"] == "b"  # type: ignore[index]


def test_a_paused_leader_stops_leading_by_its_own_clock_and_its_writes_are_refused(
    r: fakeredis.FakeRedis,
) -> None:
    clock = Clock()
    a, b = LeaderLease(r, "a", names=UNNAMED, clock=clock), LeaderLease(r, "b", names=UNNAMED, clock=clock)
    announcer = FencedAnnouncer(r, UNNAMED)
    a.tick()
    stale = a.token
    assert stale is not None
    # a is paused (SIGSTOP, a long GC) for longer than the TTL; Redis lets the lease go; b leads.
    clock.now += 10
    r.delete(protocol.KEY_LEADER)
    b.tick()
    assert b.token is not None
    assert announcer.announce(protocol.CHANNEL_STATUS, {"connected": True, "by": "b"}, b.token)
    # a wakes up: before any renewal it no longer believes it leads...
    assert a.leading() is False
    # ...and a write it had already started, with its stale token, is refused.
    assert announcer.announce(protocol.CHANNEL_STATUS, {"connected": False, "by": "a"}, stale) is False
    latest = json.loads(r.get(protocol.KEY_STATUS_LATEST))
    assert latest["by"] == "b" and latest["leader_token"] == b.token
    assert a.tick() is False  # and its renewal is refused too


def test_unrenewed_lease_runs_out_by_the_monotonic_clock(server: fakeredis.FakeServer) -> None:
    clock = Clock()
    r = fakeredis.FakeRedis(server=server)
    lease = LeaderLease(r, "a", names=UNNAMED, clock=clock)
    lease.tick()
    server.connected = False  # Redis unreachable: no renewal
    clock.now += 4.0
    assert lease.leading() is True  # within ttl - margin (6 - 1)
    clock.now += 1.5
    assert lease.leading() is False  # stepped down before Redis could give the lease away


def test_a_wall_clock_jump_changes_nothing(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    lease = LeaderLease(r, "a", names=UNNAMED, clock=clock)
    lease.tick()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # this host's clock jumps back an hour
    clock.now += 2
    assert lease.tick() is True and lease.leading() is True
    clock.now += 5.5  # no renewal for longer than the TTL allows: over, whatever the wall clock says
    assert lease.leading() is False


def test_release_frees_the_lease_for_the_next_member_at_once(r: fakeredis.FakeRedis) -> None:
    clock = Clock()
    a, b = LeaderLease(r, "a", names=UNNAMED, clock=clock), LeaderLease(r, "b", names=UNNAMED, clock=clock)
    a.tick()
    b.tick()
    a.release()
    assert b.tick() is True


def test_release_never_frees_another_members_lease(r: fakeredis.FakeRedis) -> None:
    clock = Clock()
    a, b = LeaderLease(r, "a", names=UNNAMED, clock=clock), LeaderLease(r, "b", names=UNNAMED, clock=clock)
    a.tick()
    r.delete(protocol.KEY_LEADER)
    b.tick()
    a.release()
    assert read_leader(r, UNNAMED)["member"] == "b"  # type: ignore[index]


# --- leader-only work -----------------------------------------------------------------------


def _housekeeper(r: fakeredis.FakeRedis, role: GroupRole) -> Housekeeper:
    return make_housekeeper(r, group=role, names=role.names)


def test_only_the_leader_announces_and_every_member_keeps_its_heartbeat(r: fakeredis.FakeRedis) -> None:
    clock = Clock()
    roles = [GroupRole(r, "g", m, time.time(), names=UNNAMED, clock=clock) for m in ("a", "b")]
    keepers = [_housekeeper(r, role) for role in roles]
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(protocol.CHANNEL_STATUS)
    for keeper in keepers:
        keeper._handle(LinkEvent(True, None))
        keeper._tick(time.monotonic())
    statuses = []
    for _ in range(5):  # the first call may only read the subscribe confirmation
        message = pubsub.get_message(timeout=0.05)
        if message is not None:
            statuses.append(json.loads(message["data"]))
    assert [s["leader"] for s in statuses] == ["a"]  # announced once, by the leader
    assert r.exists("mqtt:bridge:heartbeat:a") and r.exists("mqtt:bridge:heartbeat:b")
    members = membership.read_members(r, UNNAMED)
    assert (members["a"]["leader"], members["b"]["leader"]) == (True, False)
    keepers[0]._due["heartbeat"] = 0.0  # the leader's next heartbeat sees b too
    keepers[0]._tick(time.monotonic())
    group = json.loads(r.get(protocol.KEY_HEARTBEAT))
    assert group["leader"] == "a" and group["members"] == ["a", "b"]


def test_a_new_leader_announces_at_once(r: fakeredis.FakeRedis) -> None:
    clock = Clock()
    a, b = (GroupRole(r, "g", m, time.time(), names=UNNAMED, clock=clock) for m in ("a", "b"))
    ka, kb = _housekeeper(r, a), _housekeeper(r, b)
    for keeper in (ka, kb):
        keeper._handle(LinkEvent(True, None))
        keeper._tick(time.monotonic())
    r.delete(protocol.KEY_LEADER, protocol.KEY_STATUS_LATEST)  # a died; its lease ran out
    clock.now += protocol.LEADER_RENEW_INTERVAL
    kb._tick(time.monotonic())
    status = json.loads(r.get(protocol.KEY_STATUS_LATEST))
    assert status["leader"] == "b" and status["connected"] is True


# --- act-once commands ------------------------------------------------------------------------


@pytest.fixture
def pair(r: fakeredis.FakeRedis) -> list[tuple[CommandProcessor, FakeBroker]]:
    clock = Clock()
    out = []
    for member in ("a", "b"):
        role = GroupRole(r, "g", member, time.time(), names=UNNAMED, clock=clock)
        role.tick()
        broker = FakeBroker()
        subs = SubscriptionSet(("sensors/#",), 1)
        out.append((CommandProcessor(broker, subs, RedisSink(r, 100), Counters(), role), broker))  # type: ignore[arg-type]
    return out


def test_publish_runs_once_and_is_answered_once(pair: list[tuple[CommandProcessor, FakeBroker]]) -> None:
    raw = json.dumps({"type": "cmd_publish", "id": "p", "topic": "lights/1", "payload": "on"})
    answers = [processor.handle(raw) for processor, _ in pair]
    assert [a["ok"] if a else None for a in answers] == [True, None]
    assert [len(broker.published) for _, broker in pair] == [1, 0]


def test_subscribe_applies_on_every_member_and_is_answered_and_stored_once(
    pair: list[tuple[CommandProcessor, FakeBroker]], r: fakeredis.FakeRedis
) -> None:
    raw = json.dumps({"type": "cmd_subscribe", "id": "s", "topic": "lights/#", "qos": 1})
    answers = [processor.handle(raw) for processor, _ in pair]
    assert [a["ok"] if a else None for a in answers] == [True, None]
    assert all("lights/#" in broker.subscribed for _, broker in pair)
    assert list(r.hkeys(protocol.KEY_SUBSCRIPTIONS)) == [b"lights/#"]
    assert pair[0][1].swept == [["lights/#"]] and pair[1][1].swept == []  # leader fetches retained
    raw = json.dumps({"type": "cmd_unsubscribe", "id": "u", "topic": "lights/#"})
    answers = [processor.handle(raw) for processor, _ in pair]
    assert [a["ok"] if a else None for a in answers] == [True, None]
    assert not any("lights/#" in broker.subscribed for _, broker in pair)
    assert r.hlen(protocol.KEY_SUBSCRIPTIONS) == 0


def test_an_overlapping_subscribe_is_refused_with_a_sentence(
    pair: list[tuple[CommandProcessor, FakeBroker]],
) -> None:
    raw = json.dumps({"type": "cmd_subscribe", "id": "s", "topic": "sensors/+/temp"})
    answer = pair[0][0].handle(raw)
    assert answer is not None and answer["ok"] is False and "overlaps 'sensors/#'" in answer["error"]
    assert pair[1][0].handle(raw) is None
    assert not any("sensors/+/temp" in broker.subscribed for _, broker in pair)


def test_a_leader_that_lost_its_lease_does_not_publish(
    pair: list[tuple[CommandProcessor, FakeBroker]], r: fakeredis.FakeRedis
) -> None:
    r.set(protocol.KEY_LEADER, protocol.dumps({"member": "c", "token": 99}))
    raw = json.dumps({"type": "cmd_publish", "id": "p", "topic": "lights/1", "payload": "on"})
    answer = pair[0][0].handle(raw)
    assert answer is not None and answer["ok"] is False and "lost the group's leadership" in answer["error"]
    assert pair[0][1].published == []


# --- the member list -------------------------------------------------------------------------


def test_a_dead_member_is_marked_with_its_loss_estimate_then_forgotten(r: fakeredis.FakeRedis) -> None:
    membership.write_member(r, "a", {"counters": {"queue_depth": 1234, "received": 5}}, [], UNNAMED)
    r.delete("mqtt:bridge:heartbeat:a")  # its heartbeat ran out: killed
    assert membership.prune(r, 5000.0, UNNAMED) == ["a"]
    record = membership.read_members(r, UNNAMED)["a"]
    assert (record["alive"], record["estimated_lost"], record["died_at"]) == (False, 1234, 5000.0)
    assert membership.prune(r, 5001.0, UNNAMED) == []  # marked once
    membership.prune(r, 5000.0 + protocol.MEMBER_FORGET_AFTER + 1, UNNAMED)
    assert membership.read_members(r, UNNAMED) == {} and r.hlen(protocol.KEY_MEMBER_TOPICS) == 0


def test_topics_and_counters_cover_the_whole_group(r: fakeredis.FakeRedis) -> None:
    row = {"topic": "t", "retained": False, "last_payload_preview": "x"}
    membership.write_member(
        r,
        "a",
        {"counters": {"received": 3, "forwarded": 3}},
        [{**row, "messages": 3, "last_seen": 1.0}],
        UNNAMED,
    )
    membership.write_member(
        r,
        "b",
        {"counters": {"received": 4, "forwarded": 4}},
        [{**row, "messages": 4, "last_seen": 2.0, "last_payload_preview": "y"}],
        UNNAMED,
    )
    merged = membership.merged_topics(r, 100, UNNAMED)
    assert [(t["topic"], t["messages"], t["last_payload_preview"]) for t in merged] == [("t", 7, "y")]
    totals = membership.group_counters(membership.read_members(r, UNNAMED))
    assert (totals["received"], totals["forwarded"]) == (7, 7)


# --- healthcheck for one member ---------------------------------------------------------------


def test_healthcheck_checks_the_member_it_is_told(r: fakeredis.FakeRedis) -> None:
    from bridge.insight import health

    membership.write_member(r, "a", {"timestamp": time.time(), "connected": True, "pid": 7}, None, UNNAMED)
    membership.write_member(r, "b", {"timestamp": time.time(), "connected": False, "pid": 8}, None, UNNAMED)
    r.set(protocol.KEY_LEADER, protocol.dumps({"member": "a", "token": 1}))
    healthy, line = health.check_member(r, "a", UNNAMED)
    assert healthy and "the leader" in line
    healthy, line = health.check_member(r, "b", UNNAMED)
    assert not healthy and "not connected" in line
    healthy, line = health.check_member(r, "c", UNNAMED)
    assert not healthy and "no heartbeat" in line
    # A member whose clock is 60 s behind: its heartbeat was just written (Redis's TTL says so).
    old = time.time() - 60
    membership.write_member(r, "a", {"timestamp": old, "connected": True}, None, UNNAMED)
    assert health.check_member(r, "a", UNNAMED)[0] is True
    # One left without a TTL is judged by its stamp against Redis's clock.
    r.persist(membership.member_heartbeat_key("a", UNNAMED))
    healthy, line = health.check_member(r, "a", UNNAMED)
    assert not healthy and "60 s old" in line


# --- the MQTT side in group mode ----------------------------------------------------------------


def _source(env: dict[str, str]) -> Any:
    from collections import deque

    from bridge.ingest.mqtt_source import MqttSource

    return MqttSource(Settings.from_env(env), Counters(), deque(), 100, lambda event: None, lambda: [])


def test_a_member_has_its_own_status_topic_and_shares_its_data_filters() -> None:
    source = _source({"BRIDGE_GROUP": "g", "MQTT_CLIENT_ID": "m1"})
    assert source.status_topic == "mqtt-redis-bridge/status/m1"
    assert source._broker_name("sensors/#") == "$share/g/sensors/#"
    assert source._broker_name("$SYS/#") == "$SYS/#"
    single = _source({"MQTT_CLIENT_ID": "m1"})
    assert single.status_topic == "mqtt-redis-bridge/status"
    assert single._broker_name("sensors/#") == "sensors/#"


def test_retained_copies_on_shared_subscriptions_are_neither_forwarded_nor_counted() -> None:
    source = _source({"BRIDGE_GROUP": "g"})
    source._on_publish(b"sensors/1", b"kept", 0, True, 0, False)  # mosquitto 2.0.11's extra copy
    source._on_publish(b"sensors/1", b"live", 0, False, 0, False)
    source._on_publish(b"$SYS/broker/uptime", b"5 seconds", 0, True, 0, False)  # $SYS is not shared
    assert [(topic, payload) for topic, payload, *_ in source._items] == [
        ("sensors/1", b"live"),
        ("$SYS/broker/uptime", b"5 seconds"),
    ]
    assert source.counters.received == 2
    single = _source({})
    single._on_publish(b"sensors/1", b"kept", 0, True, 0, False)
    assert len(single._items) == 1  # without a group, retained messages are forwarded as before


def test_the_leaders_retained_sweep_forwards_retained_messages_only() -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from bridge.ingest.mqtt_source import RETAINED_SWEEP_ID

    def message(retain: bool, sweep: bool) -> mqtt.MQTTMessage:
        msg = mqtt.MQTTMessage(mid=0, topic=b"sensors/1")
        msg.payload, msg.retain, msg.qos = b"v", retain, 0
        if sweep:
            msg.properties = Properties(PacketTypes.PUBLISH)
            msg.properties.SubscriptionIdentifier = [RETAINED_SWEEP_ID]
        return msg

    source = _source({"BRIDGE_GROUP": "g"})
    for retain, sweep in ((True, True), (False, True), (True, False), (False, False)):
        source._on_message(source.client, None, message(retain, sweep))
    # The sweep's retained copy and the shared subscription's live one; not the sweep's live
    # copy (the shared subscription has it) nor the shared subscription's retained one.
    assert [item[3] for item in source._items] == [True, False]


def test_a_group_member_refuses_to_switch_brokers_at_run_time() -> None:
    # cmd_configure runs on every member; each would test on its own and could stay behind.
    settings = Settings.from_env({"BRIDGE_GROUP": "g", "MQTT_CLIENT_ID": "m1"})
    commands = ConnectionCommands(
        settings,
        settings,
        SOURCE_ENVIRONMENT,
        None,
        None,
        fakeredis.FakeRedis(),
        None,  # type: ignore[arg-type]
    )
    switch = protocol.Command(type=protocol.CMD_CONFIGURE, args={"host": "elsewhere"})

    with pytest.raises(InvalidCommand, match="a bridge group does not switch brokers at run time"):
        commands.configure(switch)


def test_commands_added_later_follow_the_group_rules(
    pair: list[tuple[CommandProcessor, FakeBroker]],
) -> None:
    # Pause and reconnect act on every member, the leader answering; a connection test, a
    # retained clear or a dynamic-security command runs once, on the leader.
    ran: dict[str, list[int]] = {}
    for n, (processor, _) in enumerate(pair):
        for kind in (protocol.CMD_PAUSE_SUBSCRIPTION, protocol.CMD_CLEAR_RETAINED, protocol.CMD_DYNSEC):
            processor.register(kind, lambda command, n=n: ran.setdefault(command.type, []).append(n) or None)
    for kind, topic in (
        (protocol.CMD_PAUSE_SUBSCRIPTION, "sensors/#"),
        (protocol.CMD_CLEAR_RETAINED, "sensors/#"),
        (protocol.CMD_DYNSEC, None),
    ):
        body = {"type": kind, "id": kind, **({"topic": topic} if topic else {})}
        answers = [processor.handle(json.dumps(body)) for processor, _ in pair]
        assert [a["ok"] if a else None for a in answers] == [True, None], kind
    assert ran == {"cmd_pause_subscription": [0, 1], "cmd_clear_retained": [0], "cmd_dynsec": [0]}


def test_a_named_bridge_group_keeps_its_lease_and_members_under_its_own_names(r: fakeredis.FakeRedis) -> None:
    names = protocol.Names("plant-2")
    role = GroupRole(r, "g", "m1", 1.0, names=names)
    role.tick()
    role.heartbeat({"timestamp": time.time(), "counters": {}}, [], {"connected": True})

    assert role.leading()
    assert read_leader(r, names) is not None and read_leader(r, UNNAMED) is None
    assert r.hexists("mqtt:brokers:plant-2:bridge:members", "m1")
    assert r.exists("mqtt:brokers:plant-2:bridge:heartbeat") and not r.exists(protocol.KEY_HEARTBEAT)
    assert r.exists("mqtt:brokers:plant-2:broker:status:latest")


def test_a_group_registers_its_broker_for_the_dashboards(r: fakeredis.FakeRedis) -> None:
    names = protocol.Names("plant-2")
    keeper = _housekeeper(r, GroupRole(r, "g", "m1", 1.0, names=names))

    keeper.send_heartbeat()

    assert r.zrange(protocol.KEY_BROKER_REGISTRY, 0, -1) == [b"plant-2"]


def test_the_group_shows_the_sum_of_its_members_filter_counts(r: fakeredis.FakeRedis) -> None:
    # Each member counts only its share of the messages; the leader writes the group's total.
    subs = SubscriptionSet(("sensors/#",), 0)
    for member, count in (("a", 3), ("b", 2)):
        membership.write_member(r, member, {"counters": {}}, [], UNNAMED)
        stats = FilterStats(subs)
        stats.observe([("sensors/t", b"12", 0, False, float(n), 0, False) for n in range(count)])
        stats.write(r, protocol.Names(), member, leading=member == "b")

    shown = json.loads(r.get(protocol.KEY_SUBSCRIPTION_STATS))
    assert shown["filters"] == {"sensors/#": {"messages": 5, "bytes": 10, "last_message_at": 2.0}}


def test_a_member_that_missed_a_pause_follows_the_paused_set_in_redis(r: fakeredis.FakeRedis) -> None:
    subs = SubscriptionSet(("sensors/#", "alerts/#"), 0)
    pauses = SubscriptionPause(subs, r)
    r.hset(pauses.paused_key, "alerts/#", "{}")  # paused by a command this member did not hear

    assert pauses.follow() is True
    assert subs.paused() == {"alerts/#"} and "alerts/#" not in dict(subs.broker_filters())
    assert pauses.follow() is False  # in step now
    r.hdel(pauses.paused_key, "alerts/#")  # resumed, also unheard
    assert pauses.follow() is True and subs.paused() == set()
