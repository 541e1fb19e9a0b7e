"""One broker's damaged keys in Redis, a bridge clock that is off, and loss at the broker, as the
dashboard shows them (issue 21, defects 10, 16 and 7): that broker is reported unreadable, with
the reason, and every other broker, route and socket carries on."""

from __future__ import annotations

import json
import time
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.contract import protocol
from bridge.contract.protocol import Names, dumps, envelope
from dashboard.extensions import services
from tests.unit.dashboard.fakes import BEARER, received, socket_client
from tests.unit.dashboard.test_many_brokers import run_bridge

AUTH = {"token": "unit-test-token"}
B = Names("b")
DAMAGED = {
    "huge timestamp": ("set", '{"timestamp": ' + "9" * 400 + ', "pid": 1}'),
    "infinite numbers": (
        "set",
        '{"timestamp": 1e999, "started_at": 1e999, "counters": {"forwarded": 1e999}}',
    ),
    "not JSON": ("set", "{{{ not json"),
    "a list": ("set", "[1, 2, 3]"),
    "a hash": ("hset", "timestamp"),
}


def strict_json(text: str) -> Any:
    """What a browser's JSON.parse accepts: no NaN or Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def two(redis_client: fakeredis.FakeRedis) -> fakeredis.FakeRedis:
    raw = fakeredis.FakeRedis(server=redis_client.connection_pool.connection_kwargs["server"])
    run_bridge(raw, "a")
    run_bridge(raw, "b")
    return raw


def damage(r: fakeredis.FakeRedis, kind: str) -> None:
    how, value = DAMAGED[kind]
    r.delete(B.KEY_HEARTBEAT)
    if how == "set":
        r.set(B.KEY_HEARTBEAT, value, ex=protocol.HEARTBEAT_TTL)
    else:
        r.hset(B.KEY_HEARTBEAT, value, "1")


@pytest.mark.parametrize("kind", DAMAGED)
def test_health_and_the_overview_answer_with_one_broker_damaged(
    client: FlaskClient, two: fakeredis.FakeRedis, kind: str
) -> None:
    damage(two, kind)
    terse = client.get("/health")
    details = client.get("/api/health", headers=BEARER)
    overview = client.get("/api/brokers", headers=BEARER)
    assert (terse.status_code, details.status_code, overview.status_code) == (503, 503, 200)
    body = strict_json(details.get_data(as_text=True))
    assert strict_json(terse.get_data(as_text=True))["brokers"]["a"]["online"] is True
    assert body["brokers"]["a"]["bridge"]["online"] is True  # the other broker is unaffected
    assert body["brokers"]["b"]["bridge"]["online"] is not True
    assert any(p.startswith("b: ") for p in body["problems"])
    rows = {row["name"]: row for row in strict_json(overview.get_data(as_text=True))["brokers"]}
    assert rows["a"]["online"] is True and rows["a"]["forwarded"] == 3
    assert client.get("/api/brokers/a/health", headers=BEARER).status_code == 200


@pytest.mark.parametrize("kind", ["not JSON", "a hash"])
def test_an_unreadable_heartbeat_is_shown_with_its_reason(
    client: FlaskClient, two: fakeredis.FakeRedis, kind: str
) -> None:
    damage(two, kind)
    bridge = client.get("/api/brokers/b/health", headers=BEARER).get_json()["bridge"]
    assert bridge["online"] is False and bridge["problem"]
    row = next(
        r for r in client.get("/api/brokers", headers=BEARER).get_json()["brokers"] if r["name"] == "b"
    )
    assert row["problem"] == bridge["problem"]


@pytest.mark.parametrize("kind", DAMAGED)
def test_a_socket_for_the_damaged_broker_connects_and_leaves_nothing_behind(
    app: Flask, two: fakeredis.FakeRedis, kind: str
) -> None:
    damage(two, kind)
    dash = services(app)
    sio = socket_client(app, auth={**AUTH, "broker": "b"})
    assert sio.is_connected()
    (snap,) = received(sio)["snapshot"]
    assert snap["bridge"]["online"] is not True
    sio.disconnect()
    assert dash.routers.get("b") is None and dash.routers.client_count == 0


@pytest.mark.parametrize("kind", DAMAGED)
def test_the_relay_carries_on_for_every_other_broker(app: Flask, two: fakeredis.FakeRedis, kind: str) -> None:
    damage(two, kind)
    dash = services(app)
    watching_a = socket_client(app, auth={**AUTH, "broker": "a"})
    watching_b = socket_client(app, auth={**AUTH, "broker": "b"})
    received(watching_a), received(watching_b)
    dash.relay.check_health()  # raised before, and the relay started over twice a second
    dash.relay.handle("mqtt:brokers:a:messages", dumps(envelope("message_received", topic="x", payload="1")))
    dash.relay.flush()
    got_a, got_b = received(watching_a), received(watching_b)
    assert [h["online"] for h in got_a["bridge_health"]] == [True]
    assert [h["online"] for h in got_b["bridge_health"]] == [False]
    assert [m["topic"] for f in got_a["mqtt_messages"] for m in f["messages"]] == ["x"]


def test_a_damaged_registry_or_latest_key_is_not_a_redis_outage(
    client: FlaskClient, two: fakeredis.FakeRedis
) -> None:
    two.delete(B.KEY_STATUS_LATEST)
    two.rpush(B.KEY_STATUS_LATEST, "x")  # a key of the wrong kind
    body = client.get("/api/health", headers=BEARER).get_json()
    assert body["redis"] is True and body["brokers"]["b"]["broker"]["connected"] is None
    two.zadd(protocol.KEY_BROKER_REGISTRY, {"c": float("inf")})
    rows = strict_json(client.get("/api/brokers", headers=BEARER).get_data(as_text=True))["brokers"]
    assert {r["name"]: r["last_seen"] for r in rows}["c"] is None


# --- a bridge whose clock is off (defect 16) ---------------------------------------------------


def test_a_bridge_whose_clock_is_60_s_behind_is_online(client: FlaskClient, two: fakeredis.FakeRedis) -> None:
    # Just written, with its TTL, by a bridge (or the group's leader) whose clock is 60 s slow.
    body = {"timestamp": time.time() - 60, "pid": 1, "counters": {"forwarded": 3}}
    two.set(B.KEY_HEARTBEAT, dumps(body), ex=protocol.HEARTBEAT_TTL)
    response = client.get("/health")
    assert response.status_code == 200, response.get_json()
    details = client.get("/api/brokers/b/health", headers=BEARER).get_json()
    assert details["bridge"]["online"] is True and details["bridge"]["heartbeat_age"] < 2


def test_a_group_whose_leader_clock_is_60_s_behind_has_a_leader(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    from tests.unit.dashboard.fakes import set_heartbeat

    set_heartbeat(redis_client, age=1.0, group="g", leader="m1")
    body = protocol.loads_object(redis_client.get(protocol.KEY_HEARTBEAT))
    assert body is not None
    body["timestamp"] -= 60  # stamped by the leader's slow clock
    redis_client.set(protocol.KEY_HEARTBEAT, dumps(body), keepttl=True)
    redis_client.set(
        protocol.KEY_STATUS_LATEST, dumps(envelope("status_change", connected=True, broker="m:1"))
    )
    terse = client.get("/health").get_json()
    assert terse["status"] == "ok" and terse["bridge"] == {"online": True, "leader": True}


# --- loss at the broker (defect 7) -------------------------------------------------------------


def loss(r: fakeredis.FakeRedis, names: Names, per_s: float, last_minute: int) -> None:
    data = {
        "clients_connected": 1,
        "publish_dropped": 138_414,
        "publish_dropped_recent": last_minute,
        "rates": {"publish_dropped_per_s": per_s, "messages_received_per_s": 40_000.0},
    }
    r.set(names.KEY_STATS_LATEST, dumps(envelope("stats_update", data=data)))


def test_loss_at_the_broker_makes_health_degraded_and_says_so(
    client: FlaskClient, two: fakeredis.FakeRedis
) -> None:
    assert client.get("/health").status_code == 200
    loss(two, B, 2306.5, 138_414)
    terse = client.get("/health")
    assert terse.status_code == 503
    assert terse.get_json()["brokers"]["b"] == {"online": True, "connected": True, "dropping": True}
    details = client.get("/api/health", headers=BEARER).get_json()
    assert details["status"] == "degraded"
    assert details["brokers"]["b"]["loss"] == {
        "dropping": True,
        "per_s": 2306.5,
        "last_minute": 138_414,
        "total": 138_414,
    }
    assert any(
        "b: the broker is dropping messages (138,414 in the last minute)" in p for p in details["problems"]
    )
    row = next(
        r for r in client.get("/api/brokers", headers=BEARER).get_json()["brokers"] if r["name"] == "b"
    )
    assert (row["dropped_per_s"], row["dropped_last_minute"]) == (2306.5, 138_414)


def test_drops_long_past_leave_health_ok(client: FlaskClient, two: fakeredis.FakeRedis) -> None:
    loss(two, B, 0.0, 0)  # the total is high, but nothing was dropped in the last minute
    assert client.get("/health").status_code == 200
