"""Per-filter statistics and pause/resume against the real broker and Redis."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from bridge.contract import protocol
from tests.helpers import Process, wait_for
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration


def _command(r: redis.Redis, channels: Any, kind: str, topic: str, **fields: Any) -> dict[str, Any]:
    body = protocol.command_body(kind, topic, command_id=f"{kind}-{time.monotonic_ns()}", **fields)
    results = channels(protocol.CHANNEL_RESULTS)
    results.poll()
    r.publish(protocol.CHANNEL_COMMANDS, json.dumps(body))
    return results.wait(
        protocol.CHANNEL_RESULTS, lambda m: m["id"] == body["id"], 10, f"the answer to {kind}"
    )


def _stats(r: redis.Redis) -> dict[str, Any]:
    found = protocol.loads_object(r.get(protocol.KEY_SUBSCRIPTION_STATS)) or {}
    return found.get("filters", {})


def test_a_message_counts_once_for_every_filter_it_matches(
    make_bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    make_bridge(MQTT_TOPICS="sensors/#,+/x").start()
    assert _command(r, channels, "cmd_subscribe", "sensors/a", qos=1)["ok"] is True
    publish_all(
        mosquitto.port, [("sensors/a", b"21"), ("sensors/b", b"22"), ("sensors/a", b"23"), ("other/x", b"1")]
    )

    def counted() -> dict[str, Any] | None:
        found = _stats(r)
        return found if found.get("sensors/#", {}).get("messages") == 3 else None

    found = wait_for(counted, 10, what="the statistics of every filter")
    assert {f: (s["messages"], s["bytes"]) for f, s in found.items()} == {
        "sensors/#": (3, 6),
        "sensors/a": (2, 4),
        "+/x": (1, 1),
    }
    assert found["sensors/a"]["last_message_at"] <= found["sensors/#"]["last_message_at"] <= time.time()


def test_a_paused_filter_stops_forwarding_stays_listed_survives_a_restart_and_resumes(
    make_bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    bridge = make_bridge(MQTT_TOPICS="plant/#,office/#").start()
    live = channels(protocol.CHANNEL_MESSAGES)
    paused = _command(r, channels, "cmd_pause_subscription", "office/#")
    assert (paused["ok"], paused["error"]) == (True, None)
    assert r.hexists(protocol.KEY_SUBSCRIPTIONS_PAUSED, "office/#")

    publish_all(mosquitto.port, [("office/1", b"paused"), ("plant/1", b"marker")])
    live.wait(protocol.CHANNEL_MESSAGES, lambda m: m["topic"] == "plant/1", 10, "the marker")
    assert [m["topic"] for m in live.on(protocol.CHANNEL_MESSAGES)] == ["plant/1"]

    bridge.stop()
    make_bridge(MQTT_TOPICS="plant/#,office/#").start()
    publish_all(mosquitto.port, [("office/2", b"still paused"), ("plant/2", b"marker")])
    live.wait(protocol.CHANNEL_MESSAGES, lambda m: m["topic"] == "plant/2", 10, "the second marker")
    assert [m["topic"] for m in live.on(protocol.CHANNEL_MESSAGES)] == ["plant/1", "plant/2"]

    resumed = _command(r, channels, "cmd_resume_subscription", "office/#")
    assert resumed["ok"] is True and not r.hexists(protocol.KEY_SUBSCRIPTIONS_PAUSED, "office/#")
    publish_all(mosquitto.port, [("office/3", b"resumed")])
    live.wait(protocol.CHANNEL_MESSAGES, lambda m: m["topic"] == "office/3", 10, "a message after resume")


def test_pausing_a_filter_the_bridge_does_not_bridge_is_refused(
    bridge: Any, r: redis.Redis, channels: Any
) -> None:
    answer = _command(r, channels, "cmd_pause_subscription", "nothing/here/#")

    assert answer["ok"] is False and "does not bridge 'nothing/here/#'" in answer["error"]
