"""The whole server side for real: mosquitto -> bridge -> redis-server -> 2 dashboard workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.helpers import DashboardProcess, MqttRecorder, Process, wait_for
from tests.integration.browser_client import Browser
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration

TOKEN = "full-stack-token"


@pytest.fixture
def dashboard(workdir: Any, redis_server: Process) -> Iterator[DashboardProcess]:
    proc = DashboardProcess(workdir, redis_server.port, workers=2, DASHBOARD_TOKEN=TOKEN).start()
    yield proc
    proc.stop()


def _api(dashboard: DashboardProcess) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    return session


def test_mqtt_messages_reach_every_browser_once_on_both_workers(
    bridge: Any, mosquitto: Process, dashboard: DashboardProcess
) -> None:
    browsers: list[Browser] = []
    try:
        while len(browsers) < 20:
            browsers.append(Browser(dashboard.url, {"token": TOKEN}).connect())
            workers = [sum(b.worker == w for b in browsers) for w in {b.worker for b in browsers}]
            if len(workers) == 2 and min(workers) >= 2:
                break
        assert len({b.worker for b in browsers}) == 2
        sent = [(f"site/{i % 4}/power", str(i).encode()) for i in range(150)] + [
            ("site/end", b"end")
        ]  # under one frame's cap (200)
        publish_all(mosquitto.port, sent)
        for browser in browsers:
            wait_for(
                lambda b=browser: "site/end" in b.received(), 15, what=f"site/end on worker {browser.worker}"
            )
        expected = [t for t, _ in sent]
        for browser in browsers:
            site = [t for t in browser.received() if t.startswith("site/")]
            assert site == expected, f"browser on worker {browser.worker}"
            assert browser.skipped == 0
    finally:
        for browser in browsers:
            browser.close()


def test_a_publish_through_the_api_reaches_an_mqtt_subscriber(
    bridge: Any, mosquitto: Process, dashboard: DashboardProcess
) -> None:
    with MqttRecorder(mosquitto.port, "valves/#") as subscriber:
        answer = _api(dashboard).post(
            f"{dashboard.url}/api/publish",
            json={"topic": "valves/3", "payload": "open", "qos": 1},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["ok"] is True
        wait_for(lambda: subscriber.received(), 10, what="the message at the MQTT subscriber")
        assert [(m.topic, m.payload, m.qos) for m in subscriber.received()] == [("valves/3", b"open", 1)]

    bad = _api(dashboard).post(f"{dashboard.url}/api/publish", json={"topic": "valves/#"}, timeout=10)
    assert bad.status_code == 400 and "wildcard" in bad.json()["error"]


def test_subscriptions_through_the_api(bridge: Any, mosquitto: Process, dashboard: DashboardProcess) -> None:
    api = _api(dashboard)
    added = api.post(f"{dashboard.url}/api/subscriptions", json={"filter": "alarms/+", "qos": 1}, timeout=10)
    assert added.status_code == 200, added.text
    listed = api.get(f"{dashboard.url}/api/subscriptions", timeout=10).json()["subscriptions"]
    assert {"filter": "alarms/+", "source": "command"}.items() <= next(
        s for s in listed if s["filter"] == "alarms/+"
    ).items()
    assert any(s["filter"] == "#" and s["source"] == "config" for s in listed)
    removed = api.delete(f"{dashboard.url}/api/subscriptions/alarms%2F%2B", timeout=10)
    assert removed.status_code == 200, removed.text


def test_with_the_bridge_stopped_publish_is_504_and_health_says_offline(
    bridge: Any, dashboard: DashboardProcess
) -> None:
    healthy = requests.get(f"{dashboard.url}/health", timeout=10)
    assert healthy.status_code == 200, healthy.text
    assert healthy.json()["bridge"]["online"] is True
    bridge.stop()
    answer = _api(dashboard).post(
        f"{dashboard.url}/api/publish", json={"topic": "a", "payload": "x"}, timeout=20
    )
    assert answer.status_code == 504
    assert "bridge did not answer" in answer.json()["error"]
    health = requests.get(f"{dashboard.url}/health", timeout=10)
    assert health.status_code == 503
    assert health.json()["bridge"]["online"] is False
