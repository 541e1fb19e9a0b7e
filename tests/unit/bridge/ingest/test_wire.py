"""The compiled data path reads exactly what paho reads, and writes exactly what Python writes.

Packets come from paho's own encoder; the same byte stream, cut at every byte boundary and in
random pieces, goes through stock paho's read loop and through FastClient's, and both must hand
the bridge the same messages in the same order. The JSON, PUBACKs and byte counts of the C
module are held to the Python functions they stand in for.
"""

from __future__ import annotations

import json
import random
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.contract import protocol
from bridge.contract.mqtt5_properties import from_paho
from bridge.ingest import wire
from bridge.ingest.fast_publish import FAST_PATH_OK, FastClient

pytestmark = pytest.mark.skipif(not wire.COMPILED, reason="the compiled data path is not built here")


# --- packets from paho's own encoder --------------------------------------------------------
def encoded_publish(
    version: int,
    topic: bytes,
    payload: bytes,
    qos: int = 0,
    retain: bool = False,
    dup: bool = False,
    mid: int = 1,
    **properties: Any,
) -> bytes:
    """A PUBLISH packet exactly as paho's client would send it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=version)
    client._sock = _Unwritable()  # type: ignore[assignment]  # the packet stays in paho's queue
    packed = None
    if properties:
        packed = Properties(PacketTypes.PUBLISH)
        for name, value in properties.items():
            setattr(packed, name, value)
    client._send_publish(mid, topic, payload, qos, retain, dup, None, packed)
    return bytes(client._out_packet.popleft()["packet"])


PINGRESP = b"\xd0\x00"


class _Unwritable:
    def send(self, data: bytes) -> int:
        raise BlockingIOError

    def close(self) -> None:
        pass


def stream_of(version: int, rng: random.Random, count: int, large: bool = True) -> tuple[bytes, int]:
    """``count`` packets of every kind the reader meets, and how many are PUBLISH packets."""
    packets = []
    publishes = 0
    for index in range(count):
        kind = rng.randrange(10)
        qos = rng.choice((0, 0, 1, 1, 2))
        topic = rng.choice(
            [b"a/b", b"sensors/1", "\u00e9t\u00e9/\u2603".encode(), b"$SYS/broker/uptime", b"x"]
        )
        longest = 5000 if large else 40
        payload = rng.choice(
            [b"", b"42", bytes(rng.randrange(256) for _ in range(rng.randrange(40))), b"y" * longest]
        )
        if kind == 0:
            packets.append(PINGRESP)
            continue
        publishes += 1
        extra: dict[str, Any] = {}
        if version == mqtt.MQTTv5 and kind == 1:
            extra = {"ContentType": "text/plain", "UserProperty": [("k", "v")]}
        elif version == mqtt.MQTTv5 and kind == 2:
            extra = {"SubscriptionIdentifier": 7}
        mid = index % 65535 + 1
        packets.append(
            encoded_publish(
                version,
                topic,
                payload,
                qos,
                retain=rng.random() < 0.2,
                dup=qos > 0 and rng.random() < 0.2,
                mid=mid,
                **extra,
            )
        )
        if qos == 2:  # paho hands a QoS 2 message over when the broker's PUBREL comes
            packets.append(bytes((0x62, 2, mid >> 8, mid & 0xFF)))
    return b"".join(packets), publishes


# --- a socket that hands out a byte stream in given pieces ----------------------------------
class PieceSocket:
    def __init__(self, pieces: list[bytes]):
        self.pieces = deque(p for p in pieces if p)
        self.sent = bytearray()

    def recv(self, size: int) -> bytes:
        if not self.pieces:
            raise BlockingIOError
        piece = self.pieces.popleft()
        if len(piece) > size:
            self.pieces.appendleft(piece[size:])
            piece = piece[:size]
        return piece

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def close(self) -> None:
        pass


Seen = tuple[str, bytes, int, bool, int, bool, tuple[Any, ...]]


def _props(message: mqtt.MQTTMessage) -> tuple[Any, ...]:
    """The properties as the bridge reads them (none: an empty tuple, as the fast paths give)."""
    found = from_paho(message.properties) if message.properties is not None else None
    return tuple(sorted((k, json.dumps(v)) for k, v in (found or {}).items()))


def read_with_stock_paho(version: int, pieces: list[bytes]) -> tuple[list[Seen], int]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=version, manual_ack=True)
    seen: list[Seen] = []
    client.on_message = lambda c, u, m: seen.append(
        (m.topic, m.payload, m.qos, m.retain, m.mid, m.dup, _props(m))
    )
    return seen, _drain(client, PieceSocket(pieces))


def read_with_fast_client(
    version: int, pieces: list[bytes], max_payload: int = 1 << 30
) -> tuple[list[Seen], int]:
    client = FastClient(CallbackAPIVersion.VERSION2, protocol=version, manual_ack=True)
    seen: list[Seen] = []
    client.on_message = lambda c, u, m: seen.append(
        (m.topic, m.payload, m.qos, m.retain, m.mid, m.dup, _props(m))
    )
    client.fast_handler = lambda t, p, q, r, mid, d: seen.append((t.decode(), p, q, r, mid, d, ()))
    client.max_payload = max_payload

    def batch(items: list[Any]) -> None:
        for item in items:
            assert isinstance(item[4], float)
            payload = item[1] if len(item) < 9 else (item[1], item[8])
            seen.append((item[0], payload, item[2], item[3], item[5], item[6], ()))

    client.batch_handler = batch
    return seen, _drain(client, PieceSocket(pieces))


def _drain(client: mqtt.Client, sock: PieceSocket) -> int:
    """Read until the socket has nothing left; the first error code, or 0."""
    client._sock = sock  # type: ignore[assignment]
    for _ in range(100_000):
        if not sock.pieces:
            return 0
        rc = client._packet_read()
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            return int(rc)
    raise AssertionError("the reader did not finish")


def test_the_guard_holds_so_the_fast_reader_is_what_runs() -> None:
    assert FAST_PATH_OK


@pytest.mark.parametrize("version", [mqtt.MQTTv5, mqtt.MQTTv311])
def test_every_split_of_a_packet_stream_reads_as_paho_reads_it(version: int) -> None:
    stream, publishes = stream_of(version, random.Random(version), 12, large=False)
    expected, rc = read_with_stock_paho(version, [stream])
    assert rc == 0 and len(expected) == publishes
    for cut in range(len(stream) + 1):  # every byte boundary, one split
        got, rc = read_with_fast_client(version, [stream[:cut], stream[cut:]])
        assert (got, rc) == (expected, 0), f"split at byte {cut}"


@pytest.mark.parametrize("version", [mqtt.MQTTv5, mqtt.MQTTv311])
def test_random_pieces_and_many_packets_per_read_read_as_paho_reads_them(version: int) -> None:
    rng = random.Random(23 + version)
    for _ in range(30):
        stream, _ = stream_of(version, rng, 60)
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randrange(1, 40)))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert read_with_fast_client(version, pieces) == read_with_stock_paho(version, [stream])
    one_byte_reads = [bytes([b]) for b in stream]
    assert read_with_fast_client(version, one_byte_reads) == read_with_stock_paho(version, [stream])


def test_a_four_byte_remaining_length_and_a_malformed_fifth_byte() -> None:
    # Over 2 MiB: the remaining length takes all four bytes.
    big = encoded_publish(mqtt.MQTTv5, b"big/one", b"z" * (2_097_152 + 5), qos=1, mid=9)
    assert big[1] & 0x80 and big[2] & 0x80 and big[3] & 0x80 and not big[4] & 0x80
    stream = big + encoded_publish(mqtt.MQTTv5, b"after", b"1")
    pieces = [stream[i : i + 65_536] for i in range(0, len(stream), 65_536)]
    assert read_with_fast_client(mqtt.MQTTv5, pieces) == read_with_stock_paho(mqtt.MQTTv5, [stream])
    malformed = b"\x30\xff\xff\xff\xff\x01" + b"\x00" * 10
    assert read_with_fast_client(mqtt.MQTTv5, [malformed])[1] == MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert read_with_stock_paho(mqtt.MQTTv5, [malformed])[1] == MQTTErrorCode.MQTT_ERR_PROTOCOL


def test_a_payload_over_the_cap_is_cut_before_it_is_queued_and_keeps_its_size() -> None:
    stream = encoded_publish(mqtt.MQTTv5, b"t", b"a" * 5000) + encoded_publish(mqtt.MQTTv5, b"t", b"b" * 10)
    got, rc = read_with_fast_client(mqtt.MQTTv5, [stream], max_payload=1024)
    assert rc == 0
    assert got[0][1] == (b"a" * 1024, 5000)
    assert got[1][1] == b"b" * 10


def test_a_topic_alias_and_a_non_utf8_topic_take_pahos_way() -> None:
    alias = encoded_publish(mqtt.MQTTv5, b"", b"p", TopicAlias=3)
    seen, rc = read_with_fast_client(mqtt.MQTTv5, [encoded_publish(mqtt.MQTTv5, b"first", b"1") + alias])
    expected, expected_rc = read_with_stock_paho(
        mqtt.MQTTv5, [encoded_publish(mqtt.MQTTv5, b"first", b"1") + alias]
    )
    assert (seen, rc) == (expected, expected_rc)
    items: list[Any] = []
    client = FastClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, manual_ack=True)
    client.batch_handler = items.extend
    raw: list[bytes] = []
    client.fast_handler = lambda t, *rest: raw.append(t)
    _drain(client, PieceSocket([encoded_publish(mqtt.MQTTv311, b"bad/\xff", b"z")]))
    assert (items, raw) == ([], [b"bad/\xff"])  # the lean handler decodes it with replacement


def test_a_new_connection_drops_what_was_half_read_from_the_old_one() -> None:
    client = FastClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    items: list[Any] = []
    client.batch_handler = items.extend
    packet = encoded_publish(mqtt.MQTTv5, b"t", b"whole")
    _drain(client, PieceSocket([packet[:5]]))
    _drain(client, PieceSocket([packet]))
    assert [item[1] for item in items] == [b"whole"]


# --- encode: the C JSON equals protocol.message_json ---------------------------------------
def _random_text(rng: random.Random) -> str:
    alphabet = ["a", "/", "\u00e9", "\u2603", '"', "\\", "\n", "\x01", "\x1f", "\x7f", "\U0001f600", " "]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30)))


def test_the_compiled_json_is_byte_for_byte_protocols() -> None:
    rng = random.Random(5)
    items: list[Any] = []
    for index in range(3000):
        topic = _random_text(rng)
        kind = index % 4
        if kind == 0:
            payload = _random_text(rng).encode()
        elif kind == 1:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        elif kind == 2:
            payload = b""
        else:
            payload = ("x" * rng.randrange(3000)).encode()
        stamp = rng.choice([rng.uniform(0, 2e9), 1e22, 0.1, 1765151234.123456, float(index)])
        item: tuple[Any, ...] = (
            topic,
            payload,
            rng.randrange(3),
            rng.random() < 0.5,
            stamp,
            index,
            rng.random() < 0.3,
        )
        if index % 7 == 0:
            item = (*item, None, len(payload) + rng.randrange(1, 10_000))  # cut before queueing
        if index % 11 == 0:
            item = (*item[:7], {"content_type": "text/plain", "user_properties": [["k", "\u00e9"]]})
        if index % 13 == 0:
            item = (*item[:7], {"user_properties": [["a", "b"]]}, len(payload), 123_456)
        items.append(item)
    items.append(("$SYS/broker/uptime", b"1 seconds", 0, False, 1.0, 0, False))
    messages, special = wire.encode(items, 1024)
    assert special == [len(items) - 1]
    for item, message in zip(items[:-1], messages, strict=True):
        expected = wire.encode_item(item, 1024)
        text = message.decode() if isinstance(message, bytes) else message
        assert text == expected
        assert json.loads(text)["type"] == protocol.TYPE_MESSAGE
    assert messages == wire.py_encode(items, 1024)[0] or all(
        (m.decode() if isinstance(m, bytes) else m) == p
        for m, p in zip(messages, wire.py_encode(items, 1024)[0], strict=True)
    )


def test_pubacks_are_pahos_bytes_and_qos2_is_left_to_paho() -> None:
    items = [
        ("t", b"", qos, False, 1.0, mid, False) for qos, mid in ((1, 1), (0, 0), (1, 65535), (2, 7), (1, 258))
    ]
    packet, qos2 = wire.pubacks(items, 0, len(items))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    client._sock = _Unwritable()  # type: ignore[assignment]
    for mid in (1, 65535, 258):
        client._send_puback(mid)
    assert packet == b"".join(bytes(p["packet"]) for p in client._out_packet)
    assert qos2 == [7]
    assert wire.pubacks(items, 1, 2) == (b"", [])
    assert (packet, qos2) == wire.py_pubacks(items, 0, len(items))


def test_weigh_and_take_count_bytes_as_python_does() -> None:
    items = [("topic/" + str(i), b"p" * i, 0, False, 1.0, 0, False) for i in range(100)]
    assert wire.weigh(items) == wire.py_weigh(items)
    left, right = deque(items), deque(items)
    assert wire.take(left, 1000, 3000) == wire.py_take(right, 1000, 3000)
    assert list(left) == list(right)
    huge = deque([("t", b"x" * 10_000, 0, False, 1.0, 0, False)])
    assert len(wire.take(huge, 10, 100)[0]) == 1  # one message larger than the budget still goes


def test_without_the_compiled_module_pahos_own_loop_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    stream, _ = stream_of(mqtt.MQTTv5, random.Random(11), 30)
    expected = read_with_stock_paho(mqtt.MQTTv5, [stream])
    monkeypatch.setattr(wire, "compiled", None)
    assert read_with_fast_client(mqtt.MQTTv5, [stream]) == expected


def test_the_pure_python_path_says_so_once_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(wire, "COMPILED", False)
    wire.warn_if_python()
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "pure-Python path" in caplog.records[0].getMessage()
    caplog.clear()
    monkeypatch.setattr(wire, "COMPILED", True)
    wire.warn_if_python()
    assert caplog.records == []
