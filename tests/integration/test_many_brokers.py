"""Two real brokers, two real bridges (BRIDGE_NAME a and b), one Redis, one real dashboard.

Messages never cross, commands and publishes reach only their broker, each browser socket gets
only its broker's frames, and a bridge that stops shows only its own broker offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from bridge.contract import protocol
from tests.helpers import BridgeProcess, DashboardProcess, MqttRecorder, Process, start_mosquitto, wait_for
from tests.integration.browser_client import Browser
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration

TOKEN = "many-brokers-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def brokers(workdir: Path) -> Iterator[dict[str, Process]]:
    found = {"a": start_mosquitto(workdir), "b": start_mosquitto(workdir)}
    yield found
    for proc in found.values():
        proc.stop()


@pytest.fixture
def bridges(
    workdir: Path, brokers: dict[str, Process], redis_server: Process
) -> Iterator[dict[str, BridgeProcess]]:
    found = {
        name: BridgeProcess(
            workdir, broker.port, redis_server.port, BRIDGE_NAME=name, MQTT_CLIENT_ID=f"bridge-{name}"
        ).start()
        for name, broker in brokers.items()
    }
    yield found
    for bridge in found.values():
        bridge.kill()


@pytest.fixture
def dashboard(workdir: Path, redis_server: Process) -> Iterator[DashboardProcess]:
    proc = DashboardProcess(workdir, redis_server.port, workers=1, DASHBOARD_TOKEN=TOKEN)
    proc.start()
    yield proc
    proc.stop()


def history_topics(r: redis.Redis, names: protocol.Names) -> list[str]:
    """The test's own topics in a bridge's history (not the bridge's retained status topic)."""
    entries = r.xrange(names.KEY_HISTORY)
    topics = [json.loads(fields[protocol.HISTORY_FIELD.encode()])["topic"] for _id, fields in entries]
    return [t for t in topics if t.startswith("site-")]


def publish(broker: Process, *topics: str) -> None:
    publish_all(broker.port, [(topic, b"1") for topic in topics])


def test_two_brokers_never_cross(
    r: redis.Redis,
    brokers: dict[str, Process],
    bridges: dict[str, BridgeProcess],
    dashboard: DashboardProcess,
) -> None:
    a, b = protocol.Names("a"), protocol.Names("b")
    # Both registered, with their heartbeats under their own names.
    wait_for(lambda: {m.decode() for m in r.zrange(protocol.KEY_BROKER_REGISTRY, 0, -1)} == {"a", "b"}, 10)
    assert r.exists(a.KEY_HEARTBEAT) and r.exists(b.KEY_HEARTBEAT) and not r.exists(protocol.KEY_HEARTBEAT)

    browser_a = Browser(dashboard.url, {"token": TOKEN, "broker": "a"}).connect()
    browser_b = Browser(dashboard.url, {"token": TOKEN, "broker": "b"}).connect()
    try:
        publish(brokers["a"], *(f"site-a/{n}" for n in range(5)))
        publish(brokers["b"], *(f"site-b/{n}" for n in range(5)))
        wait_for(lambda: len(history_topics(r, a)) >= 5 and len(history_topics(r, b)) >= 5, 10)
        assert history_topics(r, a) == [f"site-a/{n}" for n in range(5)]
        assert history_topics(r, b) == [f"site-b/{n}" for n in range(5)]
        assert not r.exists(protocol.KEY_HISTORY)  # nothing under the unnamed names

        wait_for(lambda: len(browser_a.received()) >= 5 and len(browser_b.received()) >= 5, 10)
        assert not [t for t in browser_a.received() if t.startswith("site-b")], browser_a.received()
        assert not [t for t in browser_b.received() if t.startswith("site-a")], browser_b.received()
        assert {t for t in browser_a.received() if t.startswith("site-")} == {f"site-a/{n}" for n in range(5)}

        # REST reads each broker's own data.
        page = requests.get(f"{dashboard.url}/api/brokers/b/messages", headers=AUTH, timeout=5).json()
        assert {m["topic"] for m in page["messages"] if m["topic"].startswith("site-")} == {
            f"site-b/{n}" for n in range(5)
        }

        # A publish made for broker a reaches broker a only.
        with (
            MqttRecorder(brokers["a"].port, "cmd/#") as on_a,
            MqttRecorder(brokers["b"].port, "cmd/#") as on_b,
        ):
            response = requests.post(
                f"{dashboard.url}/api/brokers/a/publish",
                json={"topic": "cmd/lamp", "payload": "on", "qos": 1},
                headers=AUTH,
                timeout=10,
            )
            assert response.status_code == 200, response.text
            wait_for(lambda: on_a.received(), 10, what="the publish on broker a")
            # the command was answered by bridge a alone: bridge b never saw it, so it cannot come later
            assert on_b.received() == []
            # and a subscription added on b is b's alone
            response = requests.post(
                f"{dashboard.url}/api/brokers/b/subscriptions",
                json={"filter": "extra/#"},
                headers=AUTH,
                timeout=10,
            )
            assert response.status_code == 200, response.text
        assert r.hexists(b.KEY_SUBSCRIPTIONS, "extra/#") and not r.hexists(a.KEY_SUBSCRIPTIONS, "extra/#")

        assert requests.get(f"{dashboard.url}/health", timeout=5).status_code == 200

        # Bridge b goes away: only broker b is reported offline, and browser b hears it.
        code, _ = bridges["b"].stop()
        assert code == 0

        def b_offline() -> dict[str, Any] | None:
            response = requests.get(f"{dashboard.url}/health", timeout=5)
            body: dict[str, Any] = response.json()
            return body if response.status_code == 503 else None

        body = wait_for(b_offline, 10, what="/health to report broker b")
        assert body["brokers"]["a"] == {"online": True, "connected": True, "dropping": False}
        assert body["brokers"]["b"]["online"] is False
        overview = requests.get(f"{dashboard.url}/api/brokers", headers=AUTH, timeout=5).json()["brokers"]
        assert {row["name"]: row["online"] for row in overview} == {"a": True, "b": False}
        wait_for(
            lambda: any(s["connected"] is False for s in browser_b.events_named("broker_status")),
            10,
            what="browser b to hear its broker's final status",
        )
        assert all(s["connected"] is True for s in browser_a.events_named("broker_status"))
        # broker a still works
        publish(brokers["a"], "site-a/after")
        wait_for(lambda: "site-a/after" in browser_a.received(), 10)
    finally:
        browser_a.close()
        browser_b.close()
