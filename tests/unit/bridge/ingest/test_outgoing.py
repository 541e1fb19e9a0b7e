"""Taking a publish back from paho, reading PUBACK/PUBREC refusals, and the size of a PUBLISH:
on a real socket pair, with paho's own packet code (bridge/ingest/outgoing.py)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import paho.mqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.ingest import outgoing
from bridge.ingest.outgoing import OutgoingClient, Withdrawn
from tests.helpers import REPO


def test_the_paho_internals_relied_on_are_those_of_the_locked_version() -> None:
    """Fails when paho-mqtt changes version or any function outgoing.py relies on changes: then read
    the new code (publish, _packet_queue, _packet_write, _do_on_publish, _handle_pubrec,
    _update_inflight, _messages_reconnect_reset_out, reconnect, _handle_connack,
    drop_out_messages), adapt OutgoingClient, and record the new version and digests."""
    locked = re.search(r"^paho-mqtt==(\S+)$", (REPO / "requirements.lock").read_text(), re.MULTILINE)
    assert locked is not None and locked.group(1) == outgoing.PAHO_VERSION
    assert paho.mqtt.__version__ == outgoing.PAHO_VERSION
    assert outgoing.source_digests() == outgoing.STOCK_SOURCES
    assert outgoing.OUTGOING_OK


@pytest.fixture
def wire() -> Iterator[tuple[OutgoingClient, socket.socket]]:
    """A client 'connected' to the other end of a socket pair, writing only when told to
    (``loop_write``), as paho's network thread would."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(0.5)
    client = OutgoingClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client._sock = ours
    client._thread = object()  # type: ignore[assignment]  # as under loop_start: publish only queues
    yield client, theirs
    client._sock = None
    ours.close()
    theirs.close()


def _received(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except TimeoutError:
        return b""


def test_a_publish_not_yet_written_is_taken_back_and_never_written(
    wire: tuple[OutgoingClient, socket.socket],
) -> None:
    client, peer = wire
    info = client.publish("valve/1", b"open", qos=1)

    assert client.withdraw(info) is Withdrawn.NOT_SENT
    client.loop_write()
    assert _received(peer) == b""
    assert client._out_messages == {} and len(client._out_packet) == 0
    assert client._inflight_messages == 0


def test_a_publish_already_written_may_have_arrived_and_is_never_sent_again(
    wire: tuple[OutgoingClient, socket.socket],
) -> None:
    client, peer = wire
    info = client.publish("valve/1", b"open", qos=1)
    client.loop_write()
    assert b"valve/1" in _received(peer)

    assert client.withdraw(info) is Withdrawn.MAYBE_SENT
    assert client._out_messages == {}  # so no reconnect sends it again
    assert outgoing.drop_stale(client) == 0


def test_a_publish_acknowledged_meanwhile_is_said_so(wire: tuple[OutgoingClient, socket.socket]) -> None:
    client, _ = wire
    info = client.publish("valve/1", b"open", qos=1)
    client.loop_write()
    client._in_packet = {"command": 0x40, "packet": bytearray(info.mid.to_bytes(2, "big"))}
    client._handle_pubackcomp("PUBACK")

    assert client.withdraw(info) is Withdrawn.ACKNOWLEDGED
    assert client.refusal(info) is None


def test_a_refusal_in_puback_or_pubrec_is_kept_for_the_publisher(
    wire: tuple[OutgoingClient, socket.socket],
) -> None:
    client, _ = wire
    qos1 = client.publish("denied/a", b"x", qos=1)
    qos2 = client.publish("denied/b", b"y", qos=2)
    client.loop_write()
    # PUBACK "Not authorized" (0x87); QoS 2: PUBREC 0x87, then (paho sends PUBREL) PUBCOMP success
    client._in_packet = {"command": 0x40, "packet": bytearray(qos1.mid.to_bytes(2, "big") + b"\x87\x00")}
    client._handle_pubackcomp("PUBACK")
    client._in_packet = {"command": 0x50, "packet": bytearray(qos2.mid.to_bytes(2, "big") + b"\x87\x00")}
    client._handle_pubrec()
    client._in_packet = {"command": 0x70, "packet": bytearray(qos2.mid.to_bytes(2, "big") + b"\x00\x00")}
    client._handle_pubackcomp("PUBCOMP")

    assert qos1.is_published() and qos2.is_published()
    assert str(client.refusal(qos1)) == "Not authorized"
    assert str(client.refusal(qos2)) == "Not authorized"
    assert client.refusal(qos1) is None  # read once


def test_what_an_earlier_connection_left_is_dropped_before_paho_could_resend_it(
    wire: tuple[OutgoingClient, socket.socket],
) -> None:
    client, _ = wire
    client.publish("a", b"1", qos=1)
    client.publish("b", b"2", qos=2)
    client._messages_reconnect_reset()  # what paho does when it reconnects

    assert outgoing.drop_stale(client) == 2
    assert client._out_messages == {}


def _properties(**values: object) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


SIZE_CASES = [
    (protocol, payload_size, qos, with_properties)
    for protocol in (mqtt.MQTTv5, mqtt.MQTTv311)
    for payload_size in (0, 100, 117, 118, 16_300, 16_400, 2_100_000)
    for qos in (0, 1)
    for with_properties in ((False, True) if protocol == mqtt.MQTTv5 else (False,))  # 3.1.1 has none
]


@pytest.mark.parametrize(("protocol", "payload_size", "qos", "with_properties"), SIZE_CASES)
def test_the_computed_size_is_the_size_of_the_packet_paho_writes(
    protocol: int, payload_size: int, qos: int, with_properties: bool
) -> None:
    """Across the remaining length's 1-, 2-, 3- and 4-byte forms."""
    client = OutgoingClient(CallbackAPIVersion.VERSION2, protocol=protocol)
    client._sock = socket.socket()  # never written: only the queued packet is measured
    client._thread = object()  # type: ignore[assignment]
    properties = _properties(ContentType="text/plain", UserProperty=[("k", "v")]) if with_properties else None
    try:
        client.publish("sensors/é", b"x" * payload_size, qos=qos, properties=properties)
        written = len(client._out_packet[-1]["packet"])
    finally:
        client._sock.close()
        client._sock = None
    computed = outgoing.publish_packet_size(
        "sensors/é".encode(), payload_size, qos, properties, protocol == mqtt.MQTTv5
    )
    assert computed == written
