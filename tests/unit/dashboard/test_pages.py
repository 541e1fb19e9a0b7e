"""The routes outside /api: the page (built or not), /health and /metrics."""

from __future__ import annotations

import os
from pathlib import Path

import fakeredis
from flask import Flask
from flask.testing import FlaskClient

from bridge.contract.protocol import KEY_STATUS_LATEST, dumps, envelope
from dashboard import create_app
from dashboard.config import DashboardSettings
from tests.unit.dashboard.fakes import BASE_ENV, BEARER, set_heartbeat


def build_app(static_dir: Path, client: fakeredis.FakeRedis) -> Flask:
    settings = DashboardSettings.from_env(BASE_ENV)
    return create_app(settings, redis_client=client, start_relay=False, static_dir=static_dir)


def connected_broker(client: fakeredis.FakeRedis, connected: bool = True) -> None:
    client.set(KEY_STATUS_LATEST, dumps(envelope("status_change", connected=connected, broker="mqtt:1883")))


def test_health_is_ok_when_redis_bridge_and_broker_are(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    set_heartbeat(redis_client, age=1.0)
    connected_broker(redis_client)

    response = client.get("/health")

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "worker": os.getpid(),
        "redis": True,
        "bridge": {"online": True},
        "broker": {"connected": True, "dropping": False},
        "brokers": {"default": {"online": True, "connected": True, "dropping": False}},
    }


def test_health_without_a_login_tells_nothing_about_the_installation(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    # issue 11, point 7: the broker's address, the bridge's pid, version and counters were public.
    set_heartbeat(redis_client, age=1.0, pid=4242, version="9.9.9", broker="mqtt.internal:1883")
    connected_broker(redis_client)

    text = client.get("/health").get_data(as_text=True)

    for detail in (
        "mqtt.internal",
        "mqtt:1883",
        "4242",
        "9.9.9",
        "counters",
        "heartbeat_age",
        "socket_clients",
    ):
        assert detail not in text, detail


def test_the_health_details_need_a_login(client: FlaskClient, redis_client: fakeredis.FakeRedis) -> None:
    set_heartbeat(redis_client, age=1.0)
    connected_broker(redis_client)

    assert client.get("/api/health").status_code == 401
    response = client.get("/api/health", headers=BEARER)

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["worker"] == os.getpid()
    assert body["bridge"]["online"] is True
    assert body["bridge"]["pid"] == 4242
    assert body["bridge"]["counters"] == {"received": 10, "forwarded": 10}
    assert body["broker"] == {"connected": True, "broker": "mqtt:1883", "dropping": False}
    assert body["problems"] == []
    assert body["socket_clients"] == 0


def test_health_without_a_heartbeat_reports_the_bridge_offline(client: FlaskClient) -> None:
    response = client.get("/health")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["bridge"] == {"online": False}
    assert body["broker"] == {"connected": None, "dropping": False}


def test_health_with_the_broker_disconnected_is_degraded(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    set_heartbeat(redis_client)
    connected_broker(redis_client, connected=False)

    assert client.get("/health").status_code == 503


def test_health_with_redis_down_says_so(client: FlaskClient, redis_server: fakeredis.FakeServer) -> None:
    redis_server.connected = False

    response = client.get("/health")

    assert response.status_code == 503
    assert response.get_json()["redis"] is False


def test_without_a_build_the_page_says_how_to_build_it(
    tmp_path: Path, redis_client: fakeredis.FakeRedis
) -> None:
    client = build_app(tmp_path, redis_client).test_client()

    response = client.get("/")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "make frontend" in response.get_data(as_text=True)


def test_a_built_frontend_is_served_with_its_assets(
    tmp_path: Path, redis_client: fakeredis.FakeRedis
) -> None:
    (tmp_path / "index.html").write_text("<div id=app></div>")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    client = build_app(tmp_path, redis_client).test_client()

    # Responses that stream a file must be closed, as a WSGI server would.
    with client.get("/") as page, client.get("/assets/app.js") as script:
        assert page.get_data(as_text=True) == "<div id=app></div>"
        assert page.headers["Cache-Control"] == "no-cache"
        assert script.status_code == 200
        assert script.get_data(as_text=True) == "console.log(1)"


def test_metrics_are_prometheus_text(client: FlaskClient) -> None:
    response = client.get("/metrics", headers=BEARER)

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    for name in (
        "mqtt_dashboard_socket_clients",
        "mqtt_dashboard_frames_sent_total",
        "mqtt_dashboard_messages_sent_total",
        "mqtt_dashboard_relay_reconnects_total",
    ):
        assert f"\n{name} " in text


def test_responses_carry_basic_security_headers(client: FlaskClient) -> None:
    headers = client.get("/health").headers

    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"


def _policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {d[0]: d[1:] for d in directives}


def test_the_page_is_sent_with_a_content_security_policy_without_inline_script(
    tmp_path: Path, redis_client: fakeredis.FakeRedis
) -> None:
    # issue 11, point 6
    (tmp_path / "index.html").write_text('<!doctype html><script type="module" src="/assets/a.js"></script>')
    client = build_app(tmp_path, redis_client).test_client()

    with client.get("/") as response:
        headers = response.headers

    policy = _policy(headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no other host
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]  # no click-jacking in a frame on another site
    assert policy["connect-src"] == ["'self'"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_api_answers_and_errors_carry_the_headers_too(client: FlaskClient) -> None:
    for response in (client.get("/api/topics"), client.get("/nowhere"), client.get("/health")):
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_liveness_answers_without_login_even_with_no_bridge(client: FlaskClient) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    assert client.get("/health").status_code == 503  # the pipeline itself is not healthy


def test_a_bridge_group_lists_its_members_and_health_says_a_leader_is_alive(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    from bridge.contract.protocol import KEY_MEMBERS

    set_heartbeat(redis_client, age=1.0, group="g", leader="m2", members=["m1", "m2"])
    connected_broker(redis_client)
    redis_client.hset(
        KEY_MEMBERS,
        "m1",
        dumps(
            {
                "member": "m1",
                "leader": False,
                "alive": False,
                "estimated_lost": 37,
                "counters": {"received": 5},
            }
        ),
    )
    redis_client.hset(
        KEY_MEMBERS,
        "m2",
        dumps(
            {
                "member": "m2",
                "leader": True,
                "alive": True,
                "pid": 9,
                "counters": {"received": 7, "secret": "x"},
            }
        ),
    )

    terse = client.get("/health")
    assert terse.status_code == 200
    assert terse.get_json()["bridge"] == {"online": True, "leader": True}
    assert "m2" not in terse.get_data(as_text=True)  # who leads is behind the login

    group = client.get("/api/health", headers=BEARER).get_json()["bridge"]["group"]
    assert (group["name"], group["leader"]) == ("g", "m2")
    assert [(m["member"], m["leader"], m["alive"]) for m in group["members"]] == [
        ("m2", True, True),
        ("m1", False, False),
    ]
    assert group["members"][1]["estimated_lost"] == 37
    assert group["members"][0]["counters"] == {"received": 7}


def test_the_group_leader_gone_makes_health_degraded(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    set_heartbeat(redis_client, age=40.0, group="g", leader="m2")  # no leader has refreshed it
    connected_broker(redis_client)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["bridge"] == {"online": False, "leader": False}
