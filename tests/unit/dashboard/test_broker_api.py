"""The broker-control routes over fakeredis and a fake bridge: settings shown without the password,
a password sealed before it reaches Redis, refused in words without CONFIG_SECRET_KEY."""

from __future__ import annotations

import json
from collections.abc import Callable

import fakeredis
from flask import Flask
from flask.testing import FlaskClient

from bridge.config import Settings
from bridge.contract import protocol
from bridge.contract.secret_box import SecretBox, connection_binding, generate_key
from bridge.control import broker_settings
from tests.unit.dashboard.fakes import BEARER, TOKEN, FakeBridge

KEY = generate_key()


def test_the_connection_settings_show_whether_a_password_is_set_never_what_it_is(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    client = make_app(CONFIG_SECRET_KEY=KEY).test_client()
    assert client.get("/api/broker/connection", headers=BEARER).status_code == 503

    live = Settings.from_env({"MQTT_USERNAME": "alice", "MQTT_PASSWORD": "hunter2"})
    redis_client.set(protocol.KEY_CONNECTION, protocol.dumps(broker_settings.describe(live, "environment")))
    found = client.get("/api/broker/connection", headers=BEARER)

    assert found.status_code == 200
    body = found.get_json()
    assert (body["username"], body["password"], body["secret_key"]) == ("alice", "set", True)
    assert "hunter2" not in found.get_data(as_text=True)


def test_a_test_sends_the_password_sealed_and_waits_for_the_bridge(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    client = make_app(CONFIG_SECRET_KEY=KEY).test_client()
    with FakeBridge(redis_client) as bridge:
        response = client.post(
            "/api/broker/connection/test",
            json={"host": "10.0.0.5", "port": 1884, "username": "bob", "password": "pa55"},
            headers=BEARER,
        )

    assert response.status_code == 200
    (sent,) = bridge.received
    assert sent["type"] == "cmd_test_connection" and (sent["host"], sent["port"]) == ("10.0.0.5", 1884)
    assert set(sent["password"]) == {"sealed"} and "pa55" not in json.dumps(sent)
    where = connection_binding("10.0.0.5", 1884, "bob", False, False)
    assert SecretBox([KEY]).open(sent["password"]["sealed"], where) == "pa55"


def test_without_a_key_a_password_is_refused_before_anything_is_sent(
    client: object, redis_client: fakeredis.FakeRedis
) -> None:
    with FakeBridge(redis_client) as bridge:
        response = client.put(  # type: ignore[attr-defined]
            "/api/broker/connection", json={"username": "bob", "password": "pa55"}, headers=BEARER
        )

    assert response.status_code == 400
    assert "CONFIG_SECRET_KEY is not set" in response.get_json()["error"]
    assert bridge.received == []


def test_save_reset_and_reconnect_send_their_commands(client: object, bridge: FakeBridge) -> None:
    post = client.post  # type: ignore[attr-defined]
    put = client.put  # type: ignore[attr-defined]
    delete = client.delete  # type: ignore[attr-defined]

    assert (
        put("/api/broker/connection", json={"port": 1884, "password": None}, headers=BEARER).status_code
        == 200
    )
    assert delete("/api/broker/connection", headers=BEARER).status_code == 200
    assert post("/api/broker/reconnect", headers=BEARER).status_code == 200
    assert post("/api/broker/connection/test", json={"colour": "red"}, headers=BEARER).status_code == 400

    assert [
        (c["type"], {k: c[k] for k in c if k in ("port", "password", "reset")}) for c in bridge.received
    ] == [
        ("cmd_configure", {"port": 1884, "password": None}),
        ("cmd_configure", {"reset": True}),
        ("cmd_reconnect", {}),
    ]


def test_the_switch_history_comes_newest_first(client: object, redis_client: fakeredis.FakeRedis) -> None:
    broker_settings.record_switch(redis_client, {"action": "configure", "to": "a:1"})
    broker_settings.record_switch(redis_client, {"action": "reset", "to": "b:2"})

    body = client.get("/api/broker/connection/history", headers=BEARER).get_json()  # type: ignore[attr-defined]

    assert [s["action"] for s in body["switches"]] == ["reset", "configure"]


# --- issue 21: defects 11, 14 and 17 ----------------------------------------------------------


def test_a_password_is_sealed_for_the_live_settings_the_form_left_out(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    live = Settings.from_env(
        {"MQTT_BROKER_HOST": "broker.lan", "MQTT_BROKER_PORT": "8883", "MQTT_TLS": "true"}
    )
    redis_client.set(protocol.KEY_CONNECTION, protocol.dumps(broker_settings.describe(live, "environment")))
    client = make_app(CONFIG_SECRET_KEY=KEY).test_client()
    with FakeBridge(redis_client) as bridge:
        client.post(
            "/api/broker/connection/test", json={"username": "bob", "password": "pa55"}, headers=BEARER
        )

    (sent,) = bridge.received
    where = connection_binding("broker.lan", 8883, "bob", True, False)  # what the bridge will connect to
    assert SecretBox([KEY]).open(sent["password"]["sealed"], where) == "pa55"


def test_a_session_may_test_connections_only_a_few_times_a_minute(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    app = make_app()
    first, second = app.test_client(), app.test_client()
    headers = {"Origin": "http://localhost"}
    for client in (first, second):
        assert client.post("/api/login", json={"token": TOKEN}, headers=headers).status_code == 200
    with FakeBridge(redis_client) as bridge:
        answers = [
            first.post("/api/broker/connection/test", json={"port": 1884}, headers=headers) for _ in range(7)
        ]
        switch = first.put("/api/broker/connection", json={"port": 1884}, headers=headers)
        other = second.post("/api/broker/connection/test", json={"port": 1884}, headers=headers)

    assert [a.status_code for a in answers] == [200] * 6 + [429]
    assert (
        answers[6]
        .get_json()["error"]
        .startswith("too many connection tests from this session: at most 6 a minute")
    )
    assert switch.status_code == 429  # a switch tests first: it counts too
    assert other.status_code == 200  # another session has its own count
    assert len(bridge.received) == 7


def test_deeply_nested_json_is_a_400_in_words(client: FlaskClient, bridge: FakeBridge) -> None:
    nested = "{" + '"a":{' * 50_000 + "}" * 50_001

    answer = client.post(
        "/api/broker/connection/test", data=nested, headers={**BEARER, "Content-Type": "application/json"}
    )

    assert answer.status_code == 400 and answer.get_json()["error"] == "the body must be JSON"
    assert bridge.received == []
