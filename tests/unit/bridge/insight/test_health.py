from __future__ import annotations

import time

import fakeredis
import pytest

from bridge.contract import protocol
from bridge.ingest.mqtt_source import LinkEvent
from bridge.insight import health
from bridge.insight.status import BrokerStatus

UNNAMED = protocol.Names()


def _put(r: fakeredis.FakeRedis, *, age: float, connected: bool, ttl: int | None = None) -> None:
    """A heartbeat stamped ``age`` seconds ago by the writer's clock; with ``ttl``, written as a
    bridge writes it (with a TTL), else without one (as by hand)."""
    body = health.heartbeat_body(time.time() - 100, {"received": 1}, "mq:1883", connected, ["#"])
    body["timestamp"] = time.time() - age
    r.set(protocol.KEY_HEARTBEAT, protocol.dumps(body), ex=ttl)
    status = BrokerStatus("mq:1883")
    status.apply(LinkEvent(connected, None if connected else "connection lost: keepalive timeout"))
    r.set(protocol.KEY_STATUS_LATEST, protocol.dumps(status.message()))


def test_fresh_and_connected_is_healthy(r: fakeredis.FakeRedis) -> None:
    _put(r, age=1, connected=True)
    healthy, line = health.check(r, UNNAMED)
    assert healthy and "connected to mq:1883" in line


def test_stale_heartbeat_is_unhealthy(r: fakeredis.FakeRedis) -> None:
    _put(r, age=30, connected=True)
    healthy, line = health.check(r, UNNAMED)
    assert not healthy and "30 s old" in line


def test_the_age_is_redis_own_so_a_bridge_clock_60_s_behind_is_healthy(r: fakeredis.FakeRedis) -> None:
    # Written just now, with the heartbeat's TTL, by a bridge whose clock is 60 s behind.
    _put(r, age=60, connected=True, ttl=protocol.HEARTBEAT_TTL)
    healthy, line = health.check(r, UNNAMED)
    assert healthy, line
    assert "heartbeat 0." in line  # its age as Redis measures it: just written


def test_a_heartbeat_stamped_by_a_clock_ahead_is_not_negative(r: fakeredis.FakeRedis) -> None:
    _put(r, age=-120, connected=True)  # no TTL: the stamp against Redis's clock, floored at 0
    healthy, line = health.check(r, UNNAMED)
    assert healthy and "heartbeat 0.0 s old" in line


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (b'{"timestamp": ' + b"9" * 400 + b"}", "timestamp is not a time"),
        (b'{"timestamp": "yesterday"}', "timestamp is not a time"),
        (b'{"timestamp": 1e999}', "timestamp is not a time"),
        (b"[1, 2]", "not a JSON object"),
        (b"\xff\xfe not text", "not a JSON object"),
    ],
)
def test_a_damaged_heartbeat_is_unhealthy_in_words(r: fakeredis.FakeRedis, value: bytes, words: str) -> None:
    r.set(protocol.KEY_HEARTBEAT, value)
    healthy, line = health.check(r, UNNAMED)
    assert not healthy and words in line


def test_a_heartbeat_key_of_the_wrong_kind_is_unhealthy_in_words(r: fakeredis.FakeRedis) -> None:
    r.hset(protocol.KEY_HEARTBEAT, "timestamp", "1")
    healthy, line = health.check(r, UNNAMED)
    assert not healthy and "something other than a string" in line


def test_broker_disconnected_is_unhealthy_with_the_reason(r: fakeredis.FakeRedis) -> None:
    _put(r, age=1, connected=False)
    healthy, line = health.check(r, UNNAMED)
    assert not healthy and "keepalive timeout" in line


def test_no_bridge_at_all(r: fakeredis.FakeRedis) -> None:
    healthy, line = health.check(r, UNNAMED)
    assert not healthy and "not running" in line


def test_redis_down(server: fakeredis.FakeServer, r: fakeredis.FakeRedis) -> None:
    server.connected = False
    healthy, line = health.check(r, UNNAMED)
    assert not healthy and "Redis is unreachable" in line


def test_status_records_each_transition() -> None:
    status = BrokerStatus("b:1", now=0.0)
    assert status.apply(LinkEvent(True, None), now=10.0)
    assert not status.apply(LinkEvent(True, None), now=11.0)
    assert status.apply(LinkEvent(False, "connection lost"), now=20.0)
    message = status.message()
    assert (message["connected"], message["reason"], message["since"]) == (False, "connection lost", 20.0)
    assert (message["last_connected_at"], message["last_disconnected_at"]) == (10.0, 20.0)
    assert message["broker"] == "b:1"


def test_a_bridge_whose_clock_is_60_s_behind_passes_its_healthcheck(r: fakeredis.FakeRedis) -> None:
    import threading

    from bridge.ingest.counters import Counters
    from bridge.ingest.redis_sink import RedisSink
    from bridge.insight.housekeeping import Housekeeper
    from bridge.insight.topics import TopicIndex

    status = BrokerStatus("mq:1883")
    status.apply(LinkEvent(True, None))
    keeper = Housekeeper(
        RedisSink(r, 100, UNNAMED),
        Counters(),
        status,
        TopicIndex(),
        threading.Event(),
        stats_interval=1,
        started_at=time.time(),
        configured_topics=["#"],
        load_subscriptions=lambda: True,
        clock=lambda: time.time() - 60,  # this host's clock, injected: a minute slow
    )
    keeper.send_heartbeat()
    stamped = protocol.loads_object(r.get(protocol.KEY_HEARTBEAT))
    assert stamped is not None and time.time() - stamped["timestamp"] > 59
    healthy, line = health.check(r, UNNAMED)
    assert healthy, line
