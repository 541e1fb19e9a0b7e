"""One dashboard, several brokers: per-broker REST, sockets, health and the registry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.contract import protocol
from bridge.contract.errors import ConfigError
from bridge.contract.protocol import CHANNEL_STATUS, Names, dumps, envelope
from bridge.control import broker_settings
from bridge.control.subscription_control import FilterStats, SubscriptionPause
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import SubscriptionSet
from bridge.insight.stats_history import StatsHistory
from dashboard.config import DashboardSettings
from dashboard.extensions import services
from tests.unit.dashboard.fakes import BASE_ENV, BEARER, FakeBridge, message, received, socket_client

AUTH = {"token": "unit-test-token"}


def run_bridge(client: fakeredis.FakeRedis, name: str | None, connected: bool = True) -> RedisSink:
    """What a bridge named ``name`` writes: status, heartbeat (and registry), one message."""
    sink = RedisSink(client, 100, Names(name))
    status = envelope("status_change", connected=connected, broker=f"{name or 'unnamed'}:1883")
    sink.announce(CHANNEL_STATUS, status)
    sink.heartbeat({"timestamp": time.time(), "pid": 1, "counters": {"forwarded": 3}}, status)
    stats = envelope("stats_update", data={"clients_connected": len(name or "x"), "rates": {}})
    sink.announce(protocol.CHANNEL_STATS, stats)
    sink.forward_chunk([protocol.message_json(f"from/{name}", b"1", 0, False, time.time())], f"t-{name}")
    return sink


def stop_bridge(client: fakeredis.FakeRedis, name: str | None) -> None:
    RedisSink(client, 100, Names(name)).clear_heartbeat()


@pytest.fixture
def two(redis_client: fakeredis.FakeRedis) -> fakeredis.FakeRedis:
    raw = fakeredis.FakeRedis(server=redis_client.connection_pool.connection_kwargs["server"])
    run_bridge(raw, "a")
    run_bridge(raw, "b")
    return raw


def test_each_broker_has_its_own_rest_routes(client: FlaskClient, two: Any) -> None:
    a = client.get("/api/brokers/a/broker/status", headers=BEARER)
    b = client.get("/api/brokers/b/broker/status", headers=BEARER)
    assert a.status_code == b.status_code == 200
    assert a.get_json()["broker"] == "a:1883" and b.get_json()["broker"] == "b:1883"
    topics_a = [
        m["topic"] for m in client.get("/api/brokers/a/messages", headers=BEARER).get_json()["messages"]
    ]
    assert topics_a == ["from/a"]
    # today's route is the unnamed broker, which has published nothing here
    assert client.get("/api/broker/status", headers=BEARER).status_code == 503
    assert client.get("/api/messages", headers=BEARER).get_json()["messages"] == []


def test_an_unknown_or_malformed_broker_is_404(client: FlaskClient, two: Any) -> None:
    assert client.get("/api/brokers/nope/broker/status", headers=BEARER).status_code == 404
    assert client.get("/api/brokers/No_Such/messages", headers=BEARER).status_code == 404
    assert client.get("/api/brokers/a/broker/status").status_code == 401  # still behind the login


def test_the_overview_lists_every_registered_broker(client: FlaskClient, two: Any) -> None:
    stop_bridge(two, "b")
    body = client.get("/api/brokers", headers=BEARER).get_json()
    rows = {row["name"]: row for row in body["brokers"]}
    assert list(rows) == ["a", "b"]
    assert rows["a"]["online"] is True and rows["a"]["connected"] is True
    assert rows["a"]["clients_connected"] == 1 and rows["a"]["forwarded"] == 3
    assert rows["b"]["online"] is False  # gone, but remembered
    assert body["expected"] == ["a", "b"]


def test_health_reports_each_broker_and_a_dead_one_is_not_forgotten(client: FlaskClient, two: Any) -> None:
    assert client.get("/health").status_code == 200
    stop_bridge(two, "b")
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["brokers"] == {
        "a": {"online": True, "connected": True, "dropping": False},
        "b": {"online": False, "connected": True, "dropping": False},  # its last status said connected
    }
    assert body["bridge"] == {"online": False}
    details = client.get("/api/brokers/a/health", headers=BEARER)
    assert details.status_code == 200 and details.get_json()["broker"]["broker"] == "a:1883"


def test_dashboard_brokers_names_the_brokers_health_waits_for(
    make_app: Callable[..., Flask], two: Any
) -> None:
    stop_bridge(two, "b")
    app = make_app(DASHBOARD_BROKERS="a")
    assert app.test_client().get("/health").status_code == 200
    app = make_app(DASHBOARD_BROKERS="a,c")  # c never registered: expected, so reported
    body = app.test_client().get("/health").get_json()
    assert body["brokers"]["c"] == {"online": False, "connected": None, "dropping": False}
    assert app.test_client().get("/api/brokers/c/broker/status", headers=BEARER).status_code == 503


@pytest.mark.parametrize("value", ["A", "a,,b_c", "x" * 33, " , "])
def test_a_bad_dashboard_brokers_is_one_clear_line(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        DashboardSettings.from_env({**BASE_ENV, "DASHBOARD_BROKERS": value})
    assert str(caught.value).startswith("DASHBOARD_BROKERS") and "\n" not in str(caught.value)


def test_a_publish_goes_only_to_its_broker(client: FlaskClient, redis_client: Any, two: Any) -> None:
    with (
        FakeBridge(redis_client, names=Names("a")) as a,
        FakeBridge(redis_client, names=Names("b")) as b,
        FakeBridge(redis_client) as unnamed,
    ):
        response = client.post(
            "/api/brokers/b/publish", json={"topic": "lamp", "payload": "on"}, headers=BEARER
        )
        assert response.status_code == 200, response.get_json()
    assert [c["topic"] for c in b.received] == ["lamp"]
    assert a.received == [] and unnamed.received == []
    history = client.get("/api/brokers/b/publish/history", headers=BEARER).get_json()["publishes"]
    assert [p["topic"] for p in history] == ["lamp"]
    assert client.get("/api/publish/history", headers=BEARER).get_json()["publishes"] == []
    assert client.get("/api/brokers/a/publish/history", headers=BEARER).get_json()["publishes"] == []


def test_a_template_is_shared_and_runs_on_the_broker_of_the_url(
    client: FlaskClient, redis_client: Any, two: Any
) -> None:
    made = client.post("/api/publish/templates", json={"name": "lamp", "topic": "lamp"}, headers=BEARER)
    template_id = made.get_json()["id"]
    listed = client.get("/api/brokers/a/publish/templates", headers=BEARER).get_json()["templates"]
    assert [t["id"] for t in listed] == [template_id]
    with FakeBridge(redis_client, names=Names("a")) as a, FakeBridge(redis_client) as unnamed:
        run = client.post(f"/api/brokers/a/publish/templates/{template_id}/run", headers=BEARER)
        assert run.status_code == 200
    assert len(a.received) == 1 and unnamed.received == []


def test_stats_history_per_broker(client: FlaskClient, two: Any) -> None:
    StatsHistory(two, 5, Names("a")).record({"timestamp": time.time(), "data": {"clients_connected": 7}})
    a = client.get("/api/brokers/a/broker/stats/history", headers=BEARER).get_json()["points"]
    assert [p["data"]["clients_connected"] for p in a] == [7]
    assert client.get("/api/brokers/b/broker/stats/history", headers=BEARER).get_json()["points"] == []


def test_a_socket_gets_only_the_frames_and_events_of_its_broker(app: Flask, two: Any) -> None:
    dash = services(app)
    watching_a = socket_client(app, auth={**AUTH, "broker": "a"})
    watching_b = socket_client(app, auth={**AUTH, "broker": "b"})
    unnamed = socket_client(app, auth=AUTH)
    (snap_a,) = received(watching_a)["snapshot"]
    (snap_b,) = received(watching_b)["snapshot"]
    received(unnamed)
    assert snap_a["broker"] == "a" and snap_a["status"]["broker"] == "a:1883"
    assert [m["topic"] for m in snap_a["messages"]] == ["from/a"]
    assert [m["topic"] for m in snap_b["messages"]] == ["from/b"]

    dash.relay.handle("mqtt:brokers:a:messages", dumps(message("only/a")))
    dash.relay.handle("mqtt:brokers:b:broker:status", dumps(envelope("status_change", connected=False)))
    dash.relay.handle("mqtt:messages", dumps(message("only/unnamed")))
    dash.relay.flush()
    dash.relay.check_health()

    got_a, got_b, got_unnamed = received(watching_a), received(watching_b), received(unnamed)
    assert [m["topic"] for f in got_a["mqtt_messages"] for m in f["messages"]] == ["only/a"]
    assert "mqtt_messages" not in got_b and "broker_status" not in got_a
    assert [s["connected"] for s in got_b["broker_status"]] == [False]
    assert [m["topic"] for f in got_unnamed["mqtt_messages"] for m in f["messages"]] == ["only/unnamed"]
    assert [h["online"] for h in got_a["bridge_health"]] == [True]
    assert [h["online"] for h in got_unnamed["bridge_health"]] == [False]  # no unnamed bridge runs


def test_a_socket_asking_for_a_malformed_broker_is_refused(app: Flask) -> None:
    sio = socket_client(app, auth={**AUTH, "broker": "Not Valid"})
    assert not sio.is_connected()


def test_the_same_filter_on_two_brokers_keeps_their_frames_apart(app: Flask, two: Any) -> None:
    dash = services(app)
    watching_a = socket_client(app, auth={**AUTH, "broker": "a"})
    watching_b = socket_client(app, auth={**AUTH, "broker": "b"})
    for sio in (watching_a, watching_b):
        assert sio.emit("set_filter", {"filter": "x/#"}, callback=True) == {"ok": True}
        received(sio)

    dash.relay.handle("mqtt:brokers:a:messages", dumps(message("x/1")))
    dash.relay.handle("mqtt:brokers:b:messages", dumps(message("x/2")))
    dash.relay.handle("mqtt:brokers:b:messages", dumps(message("y/2")))  # outside the filter
    dash.relay.flush()

    got_a, got_b = received(watching_a), received(watching_b)
    assert [m["topic"] for f in got_a["mqtt_messages"] for m in f["messages"]] == ["x/1"]
    assert [m["topic"] for f in got_b["mqtt_messages"] for m in f["messages"]] == ["x/2"]
    watching_a.disconnect()
    assert dash.routers.get("a") is None  # nobody watches a here any more: nothing is kept for it
    assert dash.routers.client_count == 1


def test_broker_control_and_subscription_statistics_are_per_broker(client: FlaskClient, two: Any) -> None:
    # What bridges a and b keep of their own connection, switches, counts and pauses.
    subs = SubscriptionSet(("#",), 0)
    for name in ("a", "b"):
        names = Names(name)
        two.set(names.KEY_CONNECTION, dumps({"host": f"{name}-host", "port": 1883}))
        broker_settings.record_switch(two, {"action": "reconnect", "to": f"{name}-host:1883"}, names)
        stats = FilterStats(subs)
        stats.observe([(f"from/{name}", b"x" * len(name * 3), 0, False, 1.0, 0, False)])
        stats.write(two, names)
    pauses_of_b = SubscriptionPause(subs, two, Names("b"))
    assert pauses_of_b.paused_key == "mqtt:brokers:b:subscriptions:paused"
    two.hset(pauses_of_b.paused_key, "#", "{}")  # what b's cmd_pause_subscription keeps

    for name in ("a", "b"):
        shown = client.get(f"/api/brokers/{name}/broker/connection", headers=BEARER).get_json()
        assert shown["host"] == f"{name}-host"
        switches = client.get(f"/api/brokers/{name}/broker/connection/history", headers=BEARER).get_json()
        assert [s["to"] for s in switches["switches"]] == [f"{name}-host:1883"]
    assert client.get("/api/broker/connection", headers=BEARER).status_code == 503  # the unnamed one: none
    two.set(Names("a").KEY_HEARTBEAT, dumps({"topics": ["#"], "started_at": 1.0}))
    two.set(Names("b").KEY_HEARTBEAT, dumps({"topics": ["#"], "started_at": 1.0}))
    rows = {
        name: client.get(f"/api/brokers/{name}/subscriptions", headers=BEARER).get_json()["subscriptions"]
        for name in ("a", "b")
    }
    assert [(r["filter"], r["messages"], r["bytes"], r["paused"]) for r in rows["a"]] == [("#", 1, 3, False)]
    assert [(r["filter"], r["messages"], r["bytes"], r["paused"]) for r in rows["b"]] == [("#", 1, 3, True)]
