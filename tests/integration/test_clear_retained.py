"""Clearing retained messages through the bridge, against the real broker: a subtree cleared is
gone for a new subscriber, what lies outside it stays, and the answer counts what was cleared."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from bridge.contract import protocol
from tests.helpers import MqttRecorder, Process, wait_for
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration


def _clear(r: redis.Redis, channels: Any, topic_filter: str) -> dict[str, Any]:
    body = protocol.command_body("cmd_clear_retained", topic_filter, command_id=f"c-{time.monotonic_ns()}")
    results = channels(protocol.CHANNEL_RESULTS)
    results.poll()
    r.publish(protocol.CHANNEL_COMMANDS, json.dumps(body))
    return results.wait(protocol.CHANNEL_RESULTS, lambda m: m["id"] == body["id"], 15, "the clear's answer")


def _retained_now(port: int, filters: list[str]) -> list[tuple[str, bytes]]:
    """What a brand-new subscriber gets at once: the broker's retained messages."""
    with MqttRecorder(port, [*filters, "zz/#"]) as fresh:
        # retained messages come right after the SUBACK; a marker published now comes after them
        publish_all(port, [("zz/marker", b"m")])
        wait_for(lambda: fresh.received(lambda m: m.topic == "zz/marker"), 10, what="the marker")
        return [(m.topic, m.payload) for m in fresh.received() if m.retain and m.topic != "zz/marker"]


def test_a_retained_subtree_is_cleared_and_gone_for_a_new_subscriber(
    make_bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    retained = [
        ("plant/a/temp", b"21"),
        ("plant/a/hum", b"40"),
        ("plant/b/temp", b"19"),
        ("office/temp", b"22"),
    ]
    publish_all(mosquitto.port, retained, retain=True)
    make_bridge(MQTT_TOPICS="plant/#,office/#,zz/#").start()

    def indexed() -> list[dict[str, Any]] | None:
        topics = (protocol.loads_object(r.get(protocol.KEY_TOPICS_LATEST)) or {}).get("topics") or []
        marked = [t for t in topics if t["retained"]]
        return marked if len(marked) == 4 else None

    marked = wait_for(indexed, 20, what="the four retained topics in the topic list")
    assert {t["topic"]: t["retained_payload_preview"] for t in marked}["plant/a/hum"] == "40"

    answer = _clear(r, channels, "plant/a/#")

    assert (answer["ok"], answer["error"]) == (True, None)
    assert (answer["result"]["cleared"], answer["result"]["remaining"]) == (2, 0)
    assert sorted(answer["result"]["topics"]) == ["plant/a/hum", "plant/a/temp"]
    assert "topics it has never seen" in answer["result"]["note"]
    assert sorted(_retained_now(mosquitto.port, ["plant/#", "office/#"])) == [
        ("office/temp", b"22"),
        ("plant/b/temp", b"19"),
    ]

    single = _clear(r, channels, "office/temp")
    assert (single["ok"], single["result"]["cleared"]) == (True, 1)
    assert _retained_now(mosquitto.port, ["plant/#", "office/#"]) == [("plant/b/temp", b"19")]
