"""MQTT 5 properties through the real broker: a command's reach an MQTT 5 subscriber, an MQTT 5
publisher's reach mqtt:messages and the history, and a 3.1.1 bridge refuses them in words."""

from __future__ import annotations

import json
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.contract import protocol
from tests.helpers import MqttRecorder, Process, wait_for

pytestmark = pytest.mark.integration

PROPERTIES = {
    "content_type": "application/json",
    "payload_format_indicator": 1,
    "response_topic": "replies/lamp",
    "correlation_data": "cmVxLTE=",
    "user_properties": [["unit", "C"], ["unit", "F"], ["origin", "test"]],
}


def _command(r: redis.Redis, channels: Any, body: dict[str, Any]) -> dict[str, Any]:
    results = channels(protocol.CHANNEL_RESULTS)
    results.poll()
    r.publish(protocol.CHANNEL_COMMANDS, json.dumps(body))
    return results.wait(protocol.CHANNEL_RESULTS, lambda m: m["id"] == body["id"], 10, "the command's result")


def test_user_properties_of_a_command_reach_an_mqtt5_subscriber(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    body = protocol.command_body(
        "cmd_publish", "lamp/set", command_id="p5", payload="on", qos=1, args={"properties": PROPERTIES}
    )
    with MqttRecorder(mosquitto.port, "lamp/#") as subscriber:
        answer = _command(r, channels, body)
        assert (answer["ok"], answer["error"]) == (True, None)
        (message,) = wait_for(subscriber.received, 10, what="the publish at the subscriber")

    received = message.properties
    assert received.UserProperty == [("unit", "C"), ("unit", "F"), ("origin", "test")]
    assert (received.ContentType, received.ResponseTopic, received.CorrelationData) == (
        "application/json",
        "replies/lamp",
        b"req-1",
    )


def test_properties_of_an_mqtt5_publisher_reach_mqtt_messages_and_the_history(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    live = channels(protocol.CHANNEL_MESSAGES)
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = ("unit", "C")
    properties.UserProperty = ("unit", "F")
    properties.ContentType = "text/plain"
    properties.MessageExpiryInterval = 3600
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        publisher.publish("sensors/t", b"21.5", qos=1, properties=properties).wait_for_publish(10)
        publisher.publish("sensors/t", b"21.6", qos=1).wait_for_publish(10)
    finally:
        publisher.disconnect()
        publisher.loop_stop()

    def both() -> list[dict[str, Any]] | None:
        found = [m for m in live.on(protocol.CHANNEL_MESSAGES) if m["topic"] == "sensors/t"]
        return found if len(found) == 2 else None

    with_them, without = wait_for(both, 10, what="both messages on mqtt:messages")
    assert with_them["properties"]["user_properties"] == [["unit", "C"], ["unit", "F"]]
    assert with_them["properties"]["content_type"] == "text/plain"
    # the broker passes on what is left of the expiry, never more
    assert 0 < with_them["properties"]["message_expiry_interval"] <= 3600
    assert set(with_them["properties"]) == {"user_properties", "content_type", "message_expiry_interval"}
    assert "properties" not in without
    history = [json.loads(fields[b"data"]) for _, fields in r.xrange(protocol.KEY_HISTORY)]
    assert [m.get("properties") for m in history if m["topic"] == "sensors/t"] == [
        with_them["properties"],
        None,
    ]


def test_a_bridge_on_mqtt_311_refuses_a_publish_with_properties(
    make_bridge: Any, r: redis.Redis, channels: Any
) -> None:
    make_bridge(MQTT_PROTOCOL="3.1.1").start()
    body = protocol.command_body("cmd_publish", "lamp/set", command_id="p3", args={"properties": PROPERTIES})

    answer = _command(r, channels, body)

    assert answer["ok"] is False and "MQTT 3.1.1" in answer["error"]
    plain = _command(r, channels, protocol.command_body("cmd_publish", "lamp/set", command_id="p4"))
    assert plain["ok"] is True
