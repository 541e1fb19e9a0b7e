"""A bridge group against the real servers (mosquitto 2.0.11, redis-server 7): messages shared
once each, a leader that fails over within 10 s after kill -9, at-least-once across a killed
member, and mosquitto 2.0.11's shared-subscription quirks."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from typing import Any

import pytest
import redis

from bridge.contract import protocol
from bridge.group import membership
from tests.helpers import BridgeProcess, MqttRecorder, Process, wait_for
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration

GROUP = {"BRIDGE_GROUP": "it", "MQTT_TOPICS": "data/#", "MQTT_QOS": "1"}


def _history(r: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(fields[b"data"]) for _, fields in r.xrange(protocol.KEY_HISTORY)]


def _leader(r: redis.Redis) -> str | None:
    lease = protocol.loads_object(r.get(protocol.KEY_LEADER))
    return lease.get("member") if lease else None


def _members(r: redis.Redis) -> dict[str, dict[str, Any]]:
    return membership.read_members(r, protocol.Names())


def _member_received(r: redis.Redis, member: str) -> int:
    """Data messages this member forwarded ($SYS ones, which every member reads, left out)."""
    record = _members(r).get(member) or {}
    return int((record.get("counters") or {}).get("forwarded", 0))


def _start_group(
    make_bridge: Any, r: redis.Redis, names: tuple[str, ...] = ("m1", "m2")
) -> dict[str, BridgeProcess]:
    members = {}
    for name in names:
        members[name] = make_bridge(**GROUP, MQTT_CLIENT_ID=name).start(wait_connected=False)
    wait_for(
        lambda: all(m.get("connected") for m in _members(r).values()) and len(_members(r)) == len(names),
        20,
        what="every member connected and listed",
    )
    wait_for(lambda: _leader(r) in names, 10, what="a leader")
    return members


def _wait_history(r: redis.Redis, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    wait_for(lambda: r.xlen(protocol.KEY_HISTORY) >= count, timeout, what=f"{count} messages in mqtt:history")
    return _history(r)


def test_two_members_share_the_messages_each_forwarded_once(
    make_bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    _start_group(make_bridge, r)
    publish_all(mosquitto.port, [(f"data/{i % 7}", str(i).encode()) for i in range(2000)])
    history = _wait_history(r, 2000)
    payloads = Counter(m["payload"] for m in history if m["topic"].startswith("data/"))
    assert len(payloads) == 2000 and set(payloads.values()) == {1}  # every one, exactly once
    wait_for(lambda: _member_received(r, "m1") + _member_received(r, "m2") >= 2000, 15, what="counters")
    assert _member_received(r, "m1") > 0 and _member_received(r, "m2") > 0  # both took a share
    members = _members(r)
    assert sorted(m["member"] for m in members.values() if m["leader"]) == [_leader(r)]
    assert {"pid", "host", "leader", "started_at", "counters"} <= set(members["m1"])

    # The topic index and the group heartbeat cover the whole group, not one member's share.
    def whole_index() -> bool:
        topics = protocol.loads_object(r.get(protocol.KEY_TOPICS_LATEST)) or {}
        counts = {t["topic"]: t["messages"] for t in topics.get("topics", [])}
        return sum(v for k, v in counts.items() if k.startswith("data/")) == 2000

    wait_for(whole_index, 25, what="mqtt:topics to count all 2000 messages")
    wait_for(
        lambda: (
            ((protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)) or {}).get("counters") or {}).get(
                "forwarded"
            )
            == 2000
        ),
        15,
        what="the group heartbeat's forwarded counter",
    )


def test_kill_9_of_the_leader_another_leads_within_10_s_and_work_goes_on(
    make_bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    members = _start_group(make_bridge, r)
    first = _leader(r)
    assert first is not None
    (other,) = set(members) - {first}
    statuses = r.pubsub(ignore_subscribe_messages=True)
    statuses.subscribe(protocol.CHANNEL_STATUS, protocol.CHANNEL_STATS)
    old_token = protocol.loads_object(r.get(protocol.KEY_LEADER))["token"]  # type: ignore[index]
    members[first].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    killed = time.monotonic()
    wait_for(lambda: _leader(r) == other, 10, what="the other member to lead")
    took = time.monotonic() - killed
    assert took <= 10, took
    lease = protocol.loads_object(r.get(protocol.KEY_LEADER))
    assert lease is not None and lease["token"] > old_token

    # Stats go on, written by the new leader (its fencing token in the message).
    said: list[dict[str, Any]] = []

    def new_stats() -> bool:
        message = statuses.get_message(timeout=0.2)
        if message is None:
            return False
        body = json.loads(message["data"])
        if message["channel"] == protocol.CHANNEL_STATUS.encode():
            said.append(body)
            return False
        return bool(body.get("leader_token") == lease["token"])

    wait_for(new_stats, 10, what="stats from the new leader")
    status = protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST))
    assert status is not None and status["connected"] is True and status["leader"] == other
    # The status history tells the truth: the group never lost the broker, so no "disconnected";
    # the new leader said its status once, and only the dead member's own will says offline.
    assert [(m["connected"], m["leader"]) for m in said] == [(True, other)]
    with MqttRecorder(mosquitto.port, "mqtt-redis-bridge/status/#") as wills:
        wait_for(lambda: len(wills.received()) >= 2, 5, what="the members' retained status topics")
        assert {m.topic: m.payload for m in wills.received()} == {
            f"mqtt-redis-bridge/status/{first}": b"offline",
            f"mqtt-redis-bridge/status/{other}": b"online",
        }
    # Commands go on: a publish is run once and answered once, by the new leader.
    results = r.pubsub(ignore_subscribe_messages=True)
    results.subscribe(protocol.CHANNEL_RESULTS)
    wait_for(lambda: results.get_message(timeout=0.1) is None, 2, what="results subscribed")
    # (To a topic outside the group's filters: the dead member's session still holds its share
    # of data/#, which mosquitto queues for it until it comes back; see the next test.)
    with MqttRecorder(mosquitto.port, "elsewhere/#") as recorder:
        command = {"type": "cmd_publish", "id": "after", "topic": "elsewhere/x", "payload": "p"}
        r.publish(protocol.CHANNEL_COMMANDS, json.dumps(command))
        answers: list[dict[str, Any]] = []

        def answered() -> bool:
            message = results.get_message(timeout=0.2)
            if message is not None:
                answers.append(json.loads(message["data"]))
            return bool(answers) and len(recorder.received()) >= 1

        wait_for(answered, 10, what="the publish answered and on the broker")
        assert [m.payload for m in recorder.received()] == [b"p"]  # published once
    time.sleep(0.5)  # a second answer, if any, would come at once
    while (message := results.get_message(timeout=0.1)) is not None:
        answers.append(json.loads(message["data"]))
    assert [(a["id"], a["ok"]) for a in answers] == [("after", True)]
    # The dead member is marked, with its loss estimate, once its heartbeat runs out.
    wait_for(lambda: _members(r).get(first, {}).get("alive") is False, 25, what="the dead member marked")
    assert "estimated_lost" in _members(r)[first]


def test_kill_9_of_a_member_during_a_qos1_flood_loses_nothing_once_restarted(
    make_bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    members = _start_group(make_bridge, r)
    victim = members["m2"]
    import threading

    total = 6000
    flood = threading.Thread(
        target=publish_all, args=(mosquitto.port, [(f"data/{i % 11}", str(i).encode()) for i in range(total)])
    )
    flood.start()
    wait_for(
        lambda: _member_received(r, "m2") > 0 or r.xlen(protocol.KEY_HISTORY) > 300, 20, what="the flood"
    )
    victim.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    victim.proc.wait(5)  # type: ignore[union-attr]
    assert r.xlen(protocol.KEY_HISTORY) < total  # killed mid-flood
    flood.join(60)
    victim.start(wait_connected=False)  # the same client id: its session, and its share, come back

    def all_there() -> bool:
        payloads = {m["payload"] for m in _history(r) if m["topic"].startswith("data/")}
        return len(payloads) == total

    wait_for(all_there, 60, what=f"all {total} QoS 1 messages in mqtt:history")


def test_retained_messages_are_forwarded_once_and_shared_subscriptions_come_back_after_a_restart(
    make_bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    # mosquitto 2.0.11 sends retained messages to every shared subscriber (2.0.13 sends none):
    # the members drop those copies, and the leader's own plain "retained sweep" forwards each once.
    publish_all(mosquitto.port, [(f"data/r/{i}", f"kept {i}".encode()) for i in range(20)], retain=True)
    members = _start_group(make_bridge, r)
    wait_for(
        lambda: len([m for m in _history(r) if m["topic"].startswith("data/r/")]) >= 20,
        20,
        what="the retained messages forwarded",
    )
    time.sleep(2)  # the sweep unsubscribes at once: a second copy, if any, would have come by now
    retained = Counter(m["topic"] for m in _history(r) if m["topic"].startswith("data/r/"))
    assert retained == Counter({f"data/r/{i}": 1 for i in range(20)})
    assert all(m["retain"] for m in _history(r) if m["topic"].startswith("data/r/"))
    wait_for(
        lambda: (
            sum(
                t["messages"]
                for t in (protocol.loads_object(r.get(protocol.KEY_TOPICS_LATEST)) or {}).get("topics", [])
                if t["topic"].startswith("data/r/")
            )
            == 20
        ),
        25,
        what="the topic index to count each retained message once",
    )
    # After the sweep, the leader gets only its share of live traffic (its plain subscription is gone).
    publish_all(mosquitto.port, [(f"data/live/{i}", b"x") for i in range(400)])
    wait_for(
        lambda: len([m for m in _history(r) if m["topic"].startswith("data/live/")]) == 400, 20, what="live"
    )
    time.sleep(1)
    assert len([m for m in _history(r) if m["topic"].startswith("data/live/")]) == 400
    # mosquitto 2.0.11 does not restore a resumed session's shared subscriptions: a member
    # restarted (same client id, session resumed) subscribes again, and takes its share again.
    victim = members["m2"]
    victim.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    victim.proc.wait(5)  # type: ignore[union-attr]
    victim.start(wait_connected=False)
    assert "resumed session" in wait_for(
        lambda: "resumed session" in victim.output() and victim.output(), 20, what="m2 to resume its session"
    )
    new_pid = victim.proc.pid  # type: ignore[union-attr]
    wait_for(
        lambda: (_members(r).get("m2") or {}).get("pid") == new_pid and _members(r)["m2"]["connected"],
        20,
        what="m2 back",
    )
    publish_all(mosquitto.port, [(f"data/again/{i}", b"y") for i in range(400)])
    wait_for(
        lambda: (_members(r)["m2"].get("counters") or {}).get("forwarded", 0) > 0,
        20,
        what="the restarted member to take a share again",
    )
    wait_for(
        lambda: len([m for m in _history(r) if m["topic"].startswith("data/again/")]) == 400, 20, what="all"
    )


def test_members_follow_mqtt_subscriptions_when_they_missed_a_command(
    make_bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    _start_group(make_bridge, r)
    # As if a subscribe command reached the leader only: the filter is in the hash, nowhere else.
    r.hset(protocol.KEY_SUBSCRIPTIONS, "extra/#", protocol.subscription_record(1, time.time()))

    def forwarded(prefix: str) -> int:
        return len([m for m in _history(r) if m["topic"].startswith(prefix)])

    def share_of(member: str) -> set[str]:
        rows = json.loads(r.hget(protocol.KEY_MEMBER_TOPICS, member) or b"[]")
        return {row["topic"] for row in rows if row["topic"].startswith("extra/")}

    def both_follow() -> bool:
        publish_all(mosquitto.port, [(f"extra/{i}", b"e") for i in range(20)])
        time.sleep(0.3)
        return bool(share_of("m1")) and bool(share_of("m2"))

    # Followed within the 10 s lists interval: each member takes its share of extra/#.
    wait_for(both_follow, 30, interval=0.5, what="both members to subscribe extra/# from mqtt:subscriptions")
    wait_for(lambda: forwarded("extra/") % 20 == 0, 5, what="whole batches")
    published = forwarded("extra/")
    assert Counter(m["topic"] for m in _history(r) if m["topic"].startswith("extra/")) == Counter(
        {f"extra/{i}": published // 20 for i in range(20)}
    )  # each message forwarded once, never by two members
    r.hdel(protocol.KEY_SUBSCRIPTIONS, "extra/#")
    time.sleep(12)  # one lists interval and a little: both members have unsubscribed
    before = forwarded("extra/")
    publish_all(mosquitto.port, [(f"extra/{i}", b"e") for i in range(20)])
    time.sleep(1)
    assert forwarded("extra/") == before
    assert forwarded("extra/") % 20 == 0


def test_the_leader_takes_over_a_dead_members_session_so_nothing_is_stranded(
    make_bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    # mosquitto keeps giving a dead member's session its share (QoS 1 queued there, QoS 0 dropped):
    # once the member's heartbeat is gone, the leader drains that session and ends it.
    members = _start_group(make_bridge, r)
    leader = _leader(r)
    (victim,) = set(members) - {leader}
    members[victim].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    members[victim].proc.wait(5)  # type: ignore[union-attr]
    publish_all(mosquitto.port, [(f"data/q1/{i}", str(i).encode()) for i in range(1000)], qos=1)
    try:
        wait_for(lambda: (_members(r).get(victim) or {}).get("session_released"), 40)
    except AssertionError:
        leader_log = members[leader].output()  # type: ignore[index]
        raise AssertionError(f"the session was not taken over: {_members(r)}\n{leader_log}") from None
    wait_for(
        lambda: len({m["payload"] for m in _history(r) if m["topic"].startswith("data/q1/")}) == 1000,
        10,
        what="every QoS 1 message, also the dead member's share",
    )
    assert _members(r)[victim]["adopted"] > 0  # its share was there, and was forwarded
    # From now on the live member gets all the traffic: no QoS 0 share goes to a dead session.
    publish_all(mosquitto.port, [(f"data/q0/{i}", str(i).encode()) for i in range(1000)], qos=0)
    wait_for(
        lambda: len([m for m in _history(r) if m["topic"].startswith("data/q0/")]) == 1000,
        15,
        what="every QoS 0 message after the takeover",
    )
    # The member comes back: a fresh session, and it takes a share again.
    members[victim].start(wait_connected=False)
    wait_for(lambda: (_members(r).get(victim) or {}).get("alive") is True, 20, what="the member back")
    publish_all(mosquitto.port, [(f"data/back/{i}", b"b") for i in range(400)], qos=1)
    wait_for(
        lambda: len([m for m in _history(r) if m["topic"].startswith("data/back/")]) == 400, 15, what="all"
    )
    wait_for(lambda: _member_received(r, victim) > 0, 15, what="the returned member to take a share")


def test_a_named_groups_leader_adopts_a_dead_members_session_into_its_own_names(
    make_bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    # BRIDGE_NAME=b2: every message, also those the leader drains from the dead member's session,
    # lands under mqtt:brokers:b2:…; the unnamed names (another broker's dashboard) get nothing.
    b2 = protocol.Names("b2")
    unnamed = r.pubsub(ignore_subscribe_messages=True)
    unnamed.subscribe(protocol.CHANNEL_MESSAGES)
    members = {
        name: make_bridge(**GROUP, BRIDGE_NAME="b2", MQTT_CLIENT_ID=name).start(wait_connected=False)
        for name in ("n1", "n2")
    }
    wait_for(
        lambda: (
            len(membership.read_members(r, b2)) == 2
            and all(m.get("connected") for m in membership.read_members(r, b2).values())
        ),
        20,
        what="both named members connected",
    )
    wait_for(lambda: (protocol.loads_object(r.get(b2.KEY_LEADER)) or {}).get("member"), 10, what="a leader")
    leader = protocol.loads_object(r.get(b2.KEY_LEADER))["member"]  # type: ignore[index]
    (victim,) = set(members) - {leader}
    import threading

    total = 2000
    flood = threading.Thread(
        target=publish_all, args=(mosquitto.port, [(f"data/{i % 9}", str(i).encode()) for i in range(total)])
    )
    flood.start()
    wait_for(lambda: r.xlen(b2.KEY_HISTORY) > 100, 20, what="the flood under b2's names")
    members[victim].kill()  # kill -9, mid-flood
    flood.join(60)

    def b2_payloads() -> set[str]:
        return {json.loads(fields[b"data"])["payload"] for _, fields in r.xrange(b2.KEY_HISTORY)}

    wait_for(
        lambda: (membership.read_members(r, b2).get(victim) or {}).get("session_released"),
        40,
        what="the leader to take over the dead member's session",
    )
    wait_for(lambda: len(b2_payloads()) == total, 15, what=f"all {total} QoS 1 messages under b2's names")
    assert membership.read_members(r, b2)[victim]["adopted"] > 0  # the drained share was there
    assert r.xlen(protocol.KEY_HISTORY) == 0
    assert not r.exists(protocol.KEY_MEMBERS)
    assert unnamed.get_message(timeout=0.5) is None  # nothing published on the unnamed channel


def test_stats_and_status_go_on_after_redis_restarts_empty(
    make_bridge: Any, redis_server: Process, r: redis.Redis
) -> None:
    # A group that has seen leaders come and go: the fencing token counter is at 13.
    r.set(protocol.KEY_LEADER_TOKEN, 13)
    _start_group(make_bridge, r)
    wait_for(lambda: r.exists(protocol.KEY_STATS_LATEST), 10, what="the first stats")
    stale = r.get(protocol.KEY_STATS_LATEST)
    redis_server.restart()  # no persistence: Redis comes back empty, the counter with it
    # The leader's stats write in flight lands after the restart, with the leader's token; its
    # renewal fails next, and the new lease's token must still be larger than that one.
    r.set(protocol.KEY_STATS_LATEST, stale)

    def stats_by_the_leader() -> float | None:
        lease = protocol.loads_object(r.get(protocol.KEY_LEADER))
        stats = protocol.loads_object(r.get(protocol.KEY_STATS_LATEST))
        if not lease or not stats or stats.get("leader_token") != lease.get("token"):
            return None
        return float(stats["timestamp"])

    first = wait_for(stats_by_the_leader, 25, what="stats written by the leader after the restart")
    wait_for(lambda: (stats_by_the_leader() or 0) > first, 10, what="the stats to keep coming (not frozen)")
    wait_for(
        lambda: (protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST)) or {}).get("connected"),
        10,
        what="the status restored",
    )


def test_damaged_values_in_redis_neither_stop_nor_freeze_the_group(make_bridge: Any, r: redis.Redis) -> None:
    # What a hostile review left in Redis: a 400-digit uptime, a bad last_seen in a member's share
    # of the topic index, a leader lease without a TTL, and a :latest key with a huge token.
    r.set(
        protocol.KEY_STATS_LATEST,
        '{"type":"stats_update","timestamp":1718000000.0,"data":{"uptime_seconds":' + "9" * 400 + "}}",
    )
    r.set(protocol.KEY_CLIENTS_LATEST, '{"type":"clients_update","clients":[]}')
    r.hset(protocol.KEY_MEMBER_TOPICS, "ghost", '[{"topic":"data/x","messages":1,"last_seen":"yesterday"}]')
    r.set(protocol.KEY_LEADER, '{"member":"ghost","token":5}')
    r.set(protocol.KEY_TOPICS_LATEST, '{"type":"topics_update","topics":[],"leader_token":' + "9" * 400 + "}")
    members = {
        name: make_bridge(**GROUP, MQTT_CLIENT_ID=name).start(wait_connected=False) for name in ("m1", "m2")
    }
    wait_for(lambda: _leader(r) in members, 20, what="a member to lead once the ghost's lease ran out")

    def topics_by_the_leader() -> bool:
        lease = protocol.loads_object(r.get(protocol.KEY_LEADER)) or {}
        topics = protocol.loads_object(r.get(protocol.KEY_TOPICS_LATEST)) or {}
        return topics.get("leader_token") == lease.get("token") and any(
            t["topic"] == "data/x" for t in topics.get("topics", [])
        )

    wait_for(topics_by_the_leader, 20, what="the merged topic index written by the leader")
    heartbeat = wait_for(
        lambda: protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)), 10, what="the group's heartbeat"
    )
    assert heartbeat["counters"]["redis_values_rejected"] >= 2  # each damaged value, counted
    for member in members.values():
        member.assert_alive()
    log = "".join(m.output() for m in members.values())
    assert "ignored a bad value in Redis" in log and "Traceback" not in log


def test_right_after_a_leader_takes_over_the_broker_sends_each_message_once(
    make_bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    # The new leader's retained sweep used to keep a plain subscription for 5 s: the broker then
    # sent every live message twice (the second copy through paho's slow path), and a group that
    # met load just after forming forwarded a fifth of its settled rate (bench/group_failover.py).
    publish_all(mosquitto.port, [(f"data/r/{i}", f"kept {i}".encode()) for i in range(20)], retain=True)
    with (
        MqttRecorder(mosquitto.port, "mqtt-redis-bridge/status/+") as statuses,
        MqttRecorder(mosquitto.port, "$SYS/broker/publish/messages/sent") as sent,
    ):
        members = {
            n: make_bridge(**GROUP, MQTT_CLIENT_ID=n).start(wait_connected=False) for n in ("m1", "m2")
        }

        def formed() -> bool:
            online = {m.topic.rsplit("/", 1)[-1] for m in statuses.received() if m.payload == b"online"}
            return online == set(members) and _leader(r) in members

        wait_for(formed, 20, interval=0.01, what="both members connected and a leader")

        def sent_so_far() -> int:
            return int(sent.received()[-1].payload)

        before = sent_so_far()
        publish_all(mosquitto.port, [(f"data/live/{i}", b"x") for i in range(3000)], qos=0)
        wait_for(
            lambda: len([m for m in _history(r) if m["topic"].startswith("data/live/")]) == 3000,
            20,
            what="every live message",
        )
        # Every copy was sent before the bridges could forward it: the next $SYS figure (they come
        # every second here) holds them all.
        figures = len(sent.received())
        wait_for(lambda: len(sent.received()) > figures, 5, what="the next $SYS figure")
        copies = sent_so_far() - before
    assert copies < 3000 * 1.3, copies  # once each (and the $SYS lines), not twice
    retained = Counter(m["topic"] for m in _history(r) if m["topic"].startswith("data/r/"))
    assert retained == Counter({f"data/r/{i}": 1 for i in range(20)})
