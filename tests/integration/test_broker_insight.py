"""Stats, clients, topics, heartbeat and healthcheck against a real mosquitto with log_dest topic."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis

from bridge.contract import protocol
from tests.helpers import Process, free_port, wait_for
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration


def _latest(r: redis.Redis, key: str) -> dict[str, Any] | None:
    return protocol.loads_object(r.get(key))


def test_stats_arrive_with_numeric_fields_and_rates(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    stats = channels(protocol.CHANNEL_STATS)
    publish_all(mosquitto.port, [("load/x", b"1")] * 50)

    def with_rate() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in reversed(stats.on(protocol.CHANNEL_STATS))
                # $SYS comes every few seconds: a snapshot may come before the 50 are counted.
                if m["data"]["rates"]["messages_received_per_s"] is not None
                and m["data"]["messages_received"] >= 50
            ),
            None,
        )

    message = wait_for(with_rate, 15, what="a stats snapshot with rates")
    data = message["data"]
    assert message["type"] == "stats_update"
    for field in (
        "uptime_seconds",
        "clients_connected",
        "messages_received",
        "messages_sent",
        "bytes_received",
        "subscriptions",
    ):
        assert isinstance(data[field], int), field
    assert isinstance(data["version"], str) and data["version"][0].isdigit()
    assert set(data["load"]["messages_received"]) == {"1min", "5min", "15min"}
    assert data["messages_received"] >= 50
    assert _latest(r, protocol.KEY_STATS_LATEST)["data"]["version"] == data["version"]


def test_a_client_appears_by_name_and_disappears_when_it_leaves(
    bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    def ids() -> list[str]:
        latest = _latest(r, protocol.KEY_CLIENTS_LATEST)
        return [c["client_id"] for c in (latest or {}).get("clients", [])]

    device = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="greenhouse-sensor-7", protocol=mqtt.MQTTv311
    )
    device.username_pw_set("grower")  # anonymous broker: the name is still logged
    device.connect("127.0.0.1", mosquitto.port, keepalive=45)
    device.loop_start()
    try:
        wait_for(lambda: "greenhouse-sensor-7" in ids(), 10, what="the client in mqtt:clients:latest")
        entry = next(
            c
            for c in _latest(r, protocol.KEY_CLIENTS_LATEST)["clients"]
            if c["client_id"] == "greenhouse-sensor-7"
        )
        assert (entry["username"], entry["protocol"], entry["keepalive"]) == ("grower", "MQTT 3.1.1", 45)
        assert entry["address"].startswith("127.0.0.1:")
    finally:
        device.disconnect()
        device.loop_stop()
    wait_for(lambda: "greenhouse-sensor-7" not in ids(), 10, what="the client to leave the list")


def test_a_restarted_bridge_still_lists_the_clients_connected_before_it(
    make_bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    # mosquitto 2.0 logs connects only as they happen: a client connected before the bridge
    # starts again would be missing from the list until it reconnected.
    first = make_bridge().start()
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="barn-door", protocol=mqtt.MQTTv311)
    device.connect("127.0.0.1", mosquitto.port)
    device.loop_start()
    try:
        wait_for(lambda: "barn-door" in _client_ids(r), 10, what="the client in the list")
        first.stop()
        updates = channels(protocol.CHANNEL_CLIENTS, protocol.CHANNEL_STATS)
        make_bridge().start()

        # Two client lists from the new bridge after it has seen the broker's uptime.
        def settled() -> list[dict[str, Any]] | None:
            events = updates.poll()
            uptime_at = next(
                (
                    i
                    for i, (ch, m) in enumerate(events)
                    if ch == protocol.CHANNEL_STATS and m["data"].get("uptime_seconds")
                ),
                None,
            )
            if uptime_at is None:
                return None
            lists = [m for ch, m in events[uptime_at:] if ch == protocol.CHANNEL_CLIENTS]
            return lists if len(lists) >= 2 else None

        lists = wait_for(settled, 30, what="client lists after the broker's uptime")
        assert all("barn-door" in [c["client_id"] for c in m["clients"]] for m in lists)
    finally:
        device.disconnect()
        device.loop_stop()


def _client_ids(r: redis.Redis) -> list[str]:
    latest = _latest(r, protocol.KEY_CLIENTS_LATEST)
    return [c["client_id"] for c in (latest or {}).get("clients", [])]


def test_topic_index_counts_right(bridge: Any, mosquitto: Process, r: redis.Redis) -> None:
    publish_all(mosquitto.port, [("farm/a", b"1")] * 7 + [("farm/b", b"last value")] * 3)

    def farm() -> dict[str, dict[str, Any]]:
        latest = _latest(r, protocol.KEY_TOPICS_LATEST) or {"topics": []}
        return {t["topic"]: t for t in latest["topics"] if t["topic"].startswith("farm/")}

    topics = wait_for(
        lambda: farm() if farm().get("farm/b", {}).get("messages") == 3 else None, 20, what="topics_update"
    )
    assert topics["farm/a"]["messages"] == 7
    assert topics["farm/b"]["last_payload_preview"] == "last value"


def _healthcheck(redis_port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "healthcheck",
            "--redis-port",
            str(redis_port),
            "--redis-host",
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_healthcheck_follows_the_broker(bridge: Any, mosquitto: Process, redis_server: Process) -> None:
    ok = _healthcheck(redis_server.port)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("healthy")
    mosquitto.stop()
    down = wait_for(
        lambda: (c := _healthcheck(redis_server.port)).returncode != 0 and c, 15, what="unhealthy"
    )
    assert "not connected to the broker" in down.stdout
    assert len(down.stdout.strip().splitlines()) == 1
    mosquitto.start()
    wait_for(lambda: _healthcheck(redis_server.port).returncode == 0, 40, what="healthy again")


def test_healthcheck_without_a_bridge(redis_server: Process) -> None:
    result = _healthcheck(redis_server.port)
    assert result.returncode == 1
    assert "not running" in result.stdout


def test_heartbeat_and_prometheus_metrics(make_bridge: Any, mosquitto: Process, r: redis.Redis) -> None:
    port = free_port()
    make_bridge(METRICS_PORT=str(port)).start()
    publish_all(mosquitto.port, [("m/x", b"1")] * 5)
    heartbeat = _latest(r, protocol.KEY_HEARTBEAT)
    assert set(heartbeat["counters"]) == {
        "received",
        "forwarded",
        "dropped",
        "queue_depth",
        "system",
        "reconnects",
        "commands_ok",
        "commands_failed",
        "redis_values_rejected",
    }
    assert 0 < r.ttl(protocol.KEY_HEARTBEAT) <= protocol.HEARTBEAT_TTL

    def scrape() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    text = wait_for(
        lambda: "mosquitto_uptime_seconds" in scrape() and scrape(), 15, what="broker gauges in /metrics"
    )
    assert "mqtt_bridge_messages_received_total" in text
    assert "mqtt_bridge_messages_system_total" in text
    assert 'mqtt_bridge_commands_total{result="ok"}' in text
    assert "mqtt_bridge_broker_connected 1.0" in text
