from __future__ import annotations

import time

import fakeredis

from bridge.contract import protocol
from bridge.ingest.mqtt_source import LinkEvent
from bridge.insight import health
from bridge.insight.status import BrokerStatus


def _put(r: fakeredis.FakeRedis, *, age: float, connected: bool) -> None:
    body = health.heartbeat_body(time.time() - 100, {"received": 1}, "mq:1883", connected, ["#"])
    body["timestamp"] = time.time() - age
    r.set(protocol.KEY_HEARTBEAT, protocol.dumps(body))
    status = BrokerStatus("mq:1883")
    status.apply(LinkEvent(connected, None if connected else "connection lost: keepalive timeout"))
    r.set(protocol.KEY_STATUS_LATEST, protocol.dumps(status.message()))


def test_fresh_and_connected_is_healthy(r: fakeredis.FakeRedis) -> None:
    _put(r, age=1, connected=True)
    healthy, line = health.check(r)
    assert healthy and "connected to mq:1883" in line


def test_stale_heartbeat_is_unhealthy(r: fakeredis.FakeRedis) -> None:
    _put(r, age=30, connected=True)
    healthy, line = health.check(r)
    assert not healthy and "30 s old" in line


def test_broker_disconnected_is_unhealthy_with_the_reason(r: fakeredis.FakeRedis) -> None:
    _put(r, age=1, connected=False)
    healthy, line = health.check(r)
    assert not healthy and "keepalive timeout" in line


def test_no_bridge_at_all(r: fakeredis.FakeRedis) -> None:
    healthy, line = health.check(r)
    assert not healthy and "not running" in line


def test_redis_down(server: fakeredis.FakeServer, r: fakeredis.FakeRedis) -> None:
    server.connected = False
    healthy, line = health.check(r)
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
