"""MQTT 5 publish properties: the one check, paho's wire format both ways, the message JSON."""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

import fakeredis
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.config import Settings
from bridge.contract import mqtt5_properties, protocol
from bridge.contract.backoff import NoWait
from bridge.contract.errors import InvalidCommand
from bridge.control.commands import CommandProcessor
from bridge.ingest.counters import Counters
from bridge.ingest.mqtt_source import Item, MqttSource
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import SubscriptionSet
from bridge.ingest.writer import Writer
from bridge.insight.topics import TopicIndex
from tests.unit.bridge.fakes import FakeBroker

ALL = {
    "content_type": "application/json",
    "payload_format_indicator": 1,
    "message_expiry_interval": 60,
    "response_topic": "replies/lamp",
    "correlation_data": "cmVxLTE=",  # b"req-1"
    "user_properties": [["unit", "C"], ["unit", "F"], ["origin", "dashboard"]],
}


def _over_the_wire(properties: dict[str, Any]) -> Properties:
    """Pack as paho sends a PUBLISH's properties and unpack as a receiver reads them."""
    packed = mqtt5_properties.to_paho(properties)
    assert packed is not None
    received = Properties(PacketTypes.PUBLISH)
    received.unpack(packed.pack())
    return received


def test_every_property_survives_the_wire_with_repeats_and_order_kept() -> None:
    assert mqtt5_properties.validate(ALL) == ALL
    assert mqtt5_properties.from_paho(_over_the_wire(ALL)) == ALL


def test_broker_side_properties_are_not_passed_on() -> None:
    received = _over_the_wire({"content_type": "text/plain"})
    received.SubscriptionIdentifier = 7
    received.TopicAlias = 3

    assert mqtt5_properties.from_paho(received) == {"content_type": "text/plain"}


def test_a_message_without_any_of_them_has_none() -> None:
    only_id = Properties(PacketTypes.PUBLISH)
    only_id.SubscriptionIdentifier = 2

    assert mqtt5_properties.from_paho(only_id) is None
    assert mqtt5_properties.from_paho(Properties(PacketTypes.PUBLISH)) is None
    assert mqtt5_properties.from_paho(None) is None


@pytest.mark.parametrize("empty", [None, {}])
def test_no_properties_is_valid(empty: Any) -> None:
    assert mqtt5_properties.validate(empty) == {}
    assert mqtt5_properties.to_paho({}) is None


@pytest.mark.parametrize(
    ("properties", "words"),
    [
        ([], "properties must be an object"),
        ({"colour": "red"}, "unknown MQTT 5 property 'colour'"),
        ({"content_type": 5}, "property content_type must be a string"),
        ({"payload_format_indicator": 2}, "payload_format_indicator must be 0 (bytes) or 1"),
        ({"payload_format_indicator": True}, "payload_format_indicator must be 0 (bytes) or 1"),
        ({"message_expiry_interval": -1}, "message_expiry_interval must be a whole number of seconds"),
        ({"message_expiry_interval": 2**32}, "message_expiry_interval must be a whole number of seconds"),
        ({"message_expiry_interval": 1.5}, "message_expiry_interval must be a whole number of seconds"),
        ({"response_topic": "replies/+"}, "response_topic contains a wildcard"),
        ({"response_topic": ""}, "response_topic is empty"),
        ({"correlation_data": "not base64!"}, "correlation_data is not valid base64"),
        ({"correlation_data": b"x"}, "correlation_data must be a base64 string"),
        ({"user_properties": {"unit": "C"}}, "user_properties must be a list of [key, value] pairs"),
        ({"user_properties": [["unit"]]}, "user_properties[0] must be a [key, value] pair"),
        ({"user_properties": [["unit", 5]]}, "user_properties[0] value must be a string"),
        ({"user_properties": [["a", "b"]] * 101}, "the limit is 100"),
        ({"content_type": "x" * 70_000}, "MQTT allows at most 65,535"),
    ],
)
def test_bad_properties_are_refused_in_words(properties: Any, words: str) -> None:
    with pytest.raises(InvalidCommand, match=None) as caught:
        mqtt5_properties.validate(properties)
    assert words in str(caught.value)


def test_message_json_carries_properties_only_when_present() -> None:
    plain = json.loads(protocol.message_json("t", b"1", 0, False, 1.0))
    with_them = json.loads(protocol.message_json("t", b"1", 0, False, 1.0, properties=ALL))

    assert "properties" not in plain
    assert with_them == {**plain, "properties": ALL}


def test_a_publish_command_hands_checked_properties_to_the_broker(r: fakeredis.FakeRedis) -> None:
    broker = FakeBroker()
    processor = CommandProcessor(broker, SubscriptionSet(("#",), 1), RedisSink(r, 100), Counters())  # type: ignore[arg-type]
    body = protocol.command_body("cmd_publish", "lamp/set", command_id="p1", args={"properties": ALL})

    answer = processor.handle(protocol.dumps(body))

    assert answer is not None and answer["ok"] is True
    assert broker.published_properties == [ALL]


def test_a_publish_command_with_a_bad_property_is_refused_and_not_sent(r: fakeredis.FakeRedis) -> None:
    broker = FakeBroker()
    processor = CommandProcessor(broker, SubscriptionSet(("#",), 1), RedisSink(r, 100), Counters())  # type: ignore[arg-type]
    body = protocol.command_body(
        "cmd_publish", "lamp/set", command_id="p2", args={"properties": {"message_expiry_interval": "soon"}}
    )

    answer = processor.handle(protocol.dumps(body))

    assert answer is not None and answer["ok"] is False
    assert "message_expiry_interval must be a whole number" in answer["error"]
    assert broker.published == []


def test_a_bridge_on_mqtt_311_refuses_a_publish_with_properties_in_words() -> None:
    settings = Settings.from_env({"MQTT_PROTOCOL": "3.1.1"})
    source = MqttSource(settings, Counters(), deque(), 10, lambda event: None, lambda: [])

    error = source.publish("lamp/set", b"on", 0, False, 1.0, {"content_type": "text/plain"})

    assert error is not None and "MQTT 3.1.1" in error and "MQTT 5" in error


def test_received_properties_reach_pubsub_and_history(settings: Settings, r: fakeredis.FakeRedis) -> None:
    items: deque[Item] = deque()
    source = MqttSource(settings, Counters(), items, 10, lambda event: None, lambda: [])
    with_props = mqtt.MQTTMessage(topic=b"lamp/state")
    with_props.payload, with_props.properties = b"on", _over_the_wire(ALL)
    plain = mqtt.MQTTMessage(topic=b"lamp/state")
    plain.payload = b"off"
    source._on_message(source.client, None, with_props)
    source._on_message(source.client, None, plain)
    writer = Writer(
        items,
        RedisSink(r, history_maxlen=100),
        Counters(),
        TopicIndex(),
        lambda batch: None,
        lambda topic: False,
        threading.Event(),
        backoff=NoWait(),
    )

    writer.process(list(items))

    history = [json.loads(fields[b"data"]) for _, fields in r.xrange(protocol.KEY_HISTORY)]
    assert [m.get("properties") for m in history] == [ALL, None]
