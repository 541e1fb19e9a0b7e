"""The lean PUBLISH path gives exactly what paho's own decoder gives, and is tied to paho's version."""

from __future__ import annotations

import re
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.ingest import fast_publish
from bridge.ingest.fast_publish import FastClient
from tests.helpers import REPO


def test_the_fast_path_is_on_for_the_locked_paho_and_only_for_it() -> None:
    """Fails when paho-mqtt changes version or the functions FastClient stands in for change:
    then read the new Client._handle_publish and _packet.decode_publish, adapt FastClient, and
    record the new version and digests in bridge/fast_publish.py."""
    locked = re.search(r"^paho-mqtt==(\S+)$", (REPO / "requirements.lock").read_text(), re.MULTILINE)
    assert locked is not None and locked.group(1) == fast_publish.PAHO_VERSION
    assert paho.mqtt.__version__ == fast_publish.PAHO_VERSION
    assert fast_publish.source_digests() == fast_publish.STOCK_SOURCES
    assert fast_publish.FAST_PATH_OK


def _packet_body(topic: bytes, payload: bytes, qos: int, mid: int, properties: bytes | None) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    if properties is not None:
        body += properties
    return body + payload


def _with_properties(**values: Any) -> bytes:
    properties = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties.pack()


CASES = [
    # (protocol, topic, payload, qos, retain, dup, properties or None)
    (mqtt.MQTTv5, b"a/b", b"x" * 80, 0, False, False, b"\x00"),
    (mqtt.MQTTv5, b"sensors/1", b"", 0, True, False, b"\x00"),
    (mqtt.MQTTv5, b"q/1", b"\xff\x00\xfe", 1, False, True, b"\x00"),
    (mqtt.MQTTv5, "\u00e9t\u00e9/\u2603".encode(), b"{}", 1, True, False, b"\x00"),
    (mqtt.MQTTv5, b"with/props", b"p", 0, False, False, _with_properties(ContentType="text/plain")),
    (mqtt.MQTTv5, b"with/id", b"p", 1, False, False, _with_properties(SubscriptionIdentifier=3)),
    (mqtt.MQTTv5, b"q2", b"two", 2, False, False, b"\x00"),
    (mqtt.MQTTv311, b"a/b", b"y" * 200, 0, False, False, None),
    (mqtt.MQTTv311, b"q/1", b"z", 1, True, True, None),
    (mqtt.MQTTv311, b"bad/\xff", b"z", 0, False, False, None),  # not UTF-8: bytes kept as they came
]


@pytest.mark.parametrize(("version", "topic", "payload", "qos", "retain", "dup", "properties"), CASES)
def test_every_field_matches_paho_decode_publish(
    version: int, topic: bytes, payload: bytes, qos: int, retain: bool, dup: bool, properties: bytes | None
) -> None:
    header = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = _packet_body(topic, payload, qos, 4242, properties)
    expected = _packet.decode_publish(header, body, version)

    seen: list[tuple[Any, ...]] = []
    client = FastClient(CallbackAPIVersion.VERSION2, protocol=version, manual_ack=True)
    client.fast_handler = lambda *fields: seen.append(("fast", *fields))
    client.on_message = lambda c, u, m: seen.append(
        ("paho", m._topic, m.payload, m.qos, m.retain, m.mid, m.dup)
    )
    client._in_packet = {"command": header, "packet": bytearray(body)}
    rc = client._handle_publish()
    assert rc == (mqtt.MQTT_ERR_NO_CONN if qos == 2 else mqtt.MQTT_ERR_SUCCESS)  # PUBREC: no socket here
    if qos == 2:
        client._in_packet = {"command": 0x62, "packet": bytearray((4242).to_bytes(2, "big") + b"\x00\x00")}
        client._handle_pubrel()  # paho hands QoS 2 over at PUBREL
    assert len(seen) == 1
    path, *fields = seen[0]
    assert fields == [
        expected.topic,
        expected.payload,
        expected.qos,
        expected.retain,
        expected.mid,
        expected.dup,
    ]
    assert all(type(f) is bytes for f in fields[:2])
    # Only plain QoS 0/1 packets take the lean path; properties and QoS 2 keep paho's.
    assert path == ("fast" if qos < 2 and properties in (None, b"\x00") else "paho")


def test_malformed_packets_go_to_paho_which_refuses_them() -> None:
    client = FastClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, manual_ack=True)
    client.fast_handler = lambda *fields: pytest.fail("a malformed packet took the lean path")
    client._in_packet = {"command": 0x30, "packet": bytearray(b"\x00\x00payload")}  # empty topic
    with pytest.raises(_packet.MalformedPacket):
        client._handle_publish()


def test_without_manual_acks_paho_keeps_acknowledging_itself() -> None:
    client = FastClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.fast_handler = lambda *fields: pytest.fail("the lean path never acknowledges")
    got: list[Any] = []
    client.on_message = lambda c, u, m: got.append(m.payload)
    client._in_packet = {"command": 0x30, "packet": bytearray(_packet_body(b"t", b"v", 0, 0, None))}
    client._handle_publish()
    assert got == [b"v"]
