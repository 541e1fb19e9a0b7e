"""The relay's loop: frames on a timer, one log line per Redis outage, capped backoff.

The loop runs in the test's own thread: the injected ``sleep`` is where it would yield to
other greenlets, so the test uses it to script what happens next.
"""

from __future__ import annotations

from collections.abc import Callable

import fakeredis
import pytest
from flask import Flask

from bridge.contract.backoff import Backoff
from bridge.contract.protocol import CHANNEL_MESSAGES, dumps
from dashboard.extensions import Services
from dashboard.relay import Relay
from tests.unit.dashboard.fakes import TOKEN, message, received, socket_client

AUTH = {"token": TOKEN}


def relay_for(dash: Services, client: fakeredis.FakeRedis, sleep: Callable[[float], None]) -> Relay:
    return Relay(
        dash.socketio,
        client,
        dash.router,
        dash.metrics,
        frame_interval=0.01,
        where="redis.test:6379/0",
        backoff=Backoff(base=0.1, cap=0.4, jitter=0),
        sleep=sleep,
    )


def metric(dash: Services, name: str) -> float:
    return dash.metrics.registry.get_sample_value(name) or 0.0


def test_published_messages_reach_the_browser_as_a_frame(
    app: Flask, dash: Services, redis_server: fakeredis.FakeServer, redis_client: fakeredis.FakeRedis
) -> None:
    sio = socket_client(app, auth=AUTH)
    received(sio)
    publisher = fakeredis.FakeRedis(server=redis_server)  # the bridge's own connection
    published = False

    def sleep(seconds: float) -> None:
        nonlocal published
        if not published:
            for topic in ("a/1", "a/2"):
                publisher.publish(CHANNEL_MESSAGES, dumps(message(topic)))
            published = True
        elif metric(dash, "mqtt_dashboard_frames_sent_total") >= 1:
            relay.stop()

    relay = relay_for(dash, redis_client, sleep)
    relay.run()

    (frame,) = received(sio)["mqtt_messages"]
    assert [m["topic"] for m in frame["messages"]] == ["a/1", "a/2"]


def test_an_outage_logs_one_line_and_one_when_redis_is_back(
    app: Flask,
    dash: Services,
    redis_server: fakeredis.FakeServer,
    redis_client: fakeredis.FakeRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sio = socket_client(app, auth=AUTH)
    received(sio)
    redis_server.connected = False
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        if seconds > 0:
            delays.append(seconds)
            if len(delays) == 5:
                redis_server.connected = True
        elif metric(dash, "mqtt_dashboard_relay_reconnects_total") == 1:
            relay.stop()

    relay = relay_for(dash, redis_client, sleep)
    caplog.set_level("INFO", logger="dashboard.relay")
    relay.run()

    assert delays == [0.1, 0.2, 0.4, 0.4, 0.4]  # doubling, capped
    lost = [r for r in caplog.records if "lost Redis" in r.message]
    back = [r for r in caplog.records if "reconnected to Redis" in r.message]
    assert len(lost) == 1 and lost[0].levelname == "WARNING"
    assert "redis.test:6379/0" in lost[0].message
    assert len(back) == 1
    # Browsers learn about the outage once, not once per retry.
    assert [h["redis"] for h in received(sio)["bridge_health"]] == [False]


def test_a_disabled_relay_never_starts(dash: Services) -> None:
    dash.relay.ensure_started()  # the unit-test apps are built with start_relay=False

    assert metric(dash, "mqtt_dashboard_relay_connected") == 0
