"""A lean PUBLISH handler for paho's Client: the bridge's hot path, measured.

Profiled with py-spy (docs/performance.md), paho 2.2's thread spends most of its time per
received message not on the socket but in ``Client._handle_publish``: under MQTT 5,
``_packet.decode_publish`` builds a ``Properties(PacketTypes.PUBLISH)`` object and unpacks the
(nearly always empty) property block, about 36 % of the thread's time; then an ``MQTTMessage``, a
debug log call and a walk of the (empty) per-topic callback matcher follow, under both versions.

``FastClient`` overrides ``_handle_publish`` for the common case: a QoS 0 or 1 PUBLISH whose
MQTT 5 property block is empty (or any 3.1.1 one). It reads topic, packet id and payload with
plain slicing and hands them straight to ``fast_handler``. Everything else (QoS 2, a PUBLISH with
properties such as subscription identifiers, anything malformed) goes to paho's own code,
unchanged, and from there to ``on_message`` as usual.

This overrides a private paho method, so it is tied to the paho version in requirements.lock:
``FAST_PATH_OK`` is True only when paho's version and the source of the two functions it stands
in for are exactly those this was written against. Otherwise the bridge runs stock paho (slower,
equally correct), and tests/unit/bridge/test_fast_publish.py fails, so an upgrade gets reviewed.
The same 15 lines would serve paho itself upstream: decode properties only when present.

With the compiled data path (``bridge/ingest/wire.py``) and ``batch_handler`` set, FastClient
also replaces paho's ``_packet_read``, which reads one packet with three ``recv`` calls: it reads
the socket in large chunks and lets ``_wire.scan`` turn every plain PUBLISH of a chunk into an
ingest item in one call. The first packet of any other kind (CONNACK, SUBACK, PINGRESP, a PUBLISH
with properties, QoS 2, ...) is handed to paho's own ``_packet_handle``, in order, exactly as
paho's read loop would have. Acknowledgements of a batch go out as one buffer of PUBACKs through
paho's ``_packet_queue``. The same guard covers these private methods.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

from bridge.contract import protocol
from bridge.ingest import wire

logger = logging.getLogger(__name__)

PAHO_VERSION = "2.2.0"
# sha256 of inspect.getsource() of the functions FastClient replaces (_handle_publish with
# decode_publish, _packet_read), calls in their place (_packet_handle, _sock_recv) or writes
# packets for (_packet_queue, and _send_command_with_mid, whose PUBACK bytes wire.pubacks makes).
STOCK_SOURCES = {
    "Client._handle_publish": "1bbaa3ef0e3afc6dea0423a41e67170930c024827e2e8dbf69b5d61c304b675d",
    "decode_publish": "50c158487fa3d96ecac8944c9c10b2a63d3955970512a2e4fa72f34713d17235",
    "Client._packet_read": "bbe32d8af1e37955175d7835c8b0a16a61435dbc40e563f447f08b102c776347",
    "Client._packet_handle": "ac4c129ed409db421a6f85be6fdce91ebee5bdf1048bcc67034930c2617472f5",
    "Client._sock_recv": "c3b9043a46dd81b79a601a321a2479154ec158c75243f4f4ad7431474efa1d62",
    "Client._packet_queue": "e298fa9ab31e5f79c1c6d08d303b049db9a2bcf681dcac1cd510b2fb519d3a26",
    "Client._send_command_with_mid": "1a771678b66dc9e48c72d825a824a0634506f914ac2b46e7c5d00de7547fc9ff",
}

# (topic bytes, payload, qos, retain, mid, dup)
FastHandler = Callable[[bytes, bytes, int, bool, int, bool], None]
# A list of ingest items (mqtt_source.Item), in the order the broker sent them.
BatchHandler = Callable[[list[Any]], None]

# One recv: below glibc's mmap threshold, so each read reuses heap memory (no fresh mapping to fault
# in); a larger packet still being read gets up to READ_MAX at once.
READ_SIZE = 64 * 1024
READ_MAX = 4 * 1024 * 1024


def source_digests() -> dict[str, str]:
    functions: dict[str, Callable[..., Any]] = {
        "Client._handle_publish": mqtt.Client._handle_publish,
        "decode_publish": _packet.decode_publish,
        "Client._packet_read": mqtt.Client._packet_read,
        "Client._packet_handle": mqtt.Client._packet_handle,
        "Client._sock_recv": mqtt.Client._sock_recv,
        "Client._packet_queue": mqtt.Client._packet_queue,
        "Client._send_command_with_mid": mqtt.Client._send_command_with_mid,
    }
    return {name: hashlib.sha256(inspect.getsource(f).encode()).hexdigest() for name, f in functions.items()}


FAST_PATH_OK = paho.mqtt.__version__ == PAHO_VERSION and source_digests() == STOCK_SOURCES


class FastClient(mqtt.Client):
    """paho's Client; with ``fast_handler`` set (and manual acknowledgements), plain QoS 0/1
    PUBLISH packets skip paho's message objects and go to that handler directly; with
    ``batch_handler`` set too (and the compiled path built), whole socket reads at a time."""

    fast_handler: FastHandler | None = None
    batch_handler: BatchHandler | None = None
    max_payload = protocol.DEFAULT_PAYLOAD_MAX_BYTES  # payloads are cut to this before queueing
    retain_slow = False  # group mode: retained PUBLISH packets take the per-message handler
    _read_socket: Any = None
    _read_buffer = bytearray()
    _read_needed = 0

    def _packet_read(self) -> MQTTErrorCode:
        scan = wire.compiled.scan if wire.compiled is not None else None
        if scan is None or self.batch_handler is None or not self._manual_ack or self._in_packet["command"]:
            return super()._packet_read()
        sock = self._sock
        if sock is not self._read_socket:  # a new connection: nothing read before belongs to it
            self._read_socket, self._read_buffer, self._read_needed = sock, bytearray(), 0
        try:
            data = self._sock_recv(max(READ_SIZE, min(self._read_needed, READ_MAX)))
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:  # TimeoutError included, as in paho's loop
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        buffer = self._read_buffer
        source: bytes | bytearray = data
        if buffer:
            buffer += data
            source = buffer
        mqtt5 = self._protocol == mqtt.MQTTv5
        stamp = time.time()
        pos, rc, handler = 0, MQTTErrorCode.MQTT_ERR_SUCCESS, self.batch_handler
        while True:
            try:
                pos, items, stop, self._read_needed = scan(
                    source, pos, mqtt5, self.max_payload, stamp, self.retain_slow
                )
            except Exception:  # out of memory, say: drop the connection, never the thread
                logger.exception("reading the broker's packets failed; reconnecting")
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
                pos = len(source)
                break
            if items:
                try:
                    handler(items)
                except Exception:  # as paho's suppress_exceptions: a bug must not end the thread
                    logger.exception("the bridge's message handler failed")
            if stop is None:
                break
            command, body, end = stop
            if command < 0:
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL  # a fifth remaining-length byte
                break
            rc = self._handle_one(command, source[body:end])
            pos = end
            if rc or self._sock is not sock:
                break
        if source is buffer:
            del buffer[:pos]
        else:
            self._read_buffer = bytearray(data[pos:]) if pos < len(data) else bytearray()
        return rc

    def _handle_one(self, command: int, body: bytes | bytearray) -> MQTTErrorCode:
        """One complete packet to paho's own handler, as its read loop would pass it."""
        self._in_packet = {
            "command": command,
            "have_remaining": 1,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": len(body),
            "packet": bytearray(body),
            "to_process": 0,
            "pos": 0,
        }
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        return rc

    def queue_pubacks(self, packet: bytes) -> None:
        """Send PUBACKs made by ``wire.pubacks`` (any thread, as paho's own ``ack``)."""
        if packet:
            self._packet_queue(mqtt.PUBACK, packet, 0, 0)

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.fast_handler
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if handler is None or qos == 2 or not self._manual_ack:
            return super()._handle_publish()
        data = bytes(self._in_packet["packet"])
        size = len(data)
        if size < 2:
            return super()._handle_publish()  # malformed: paho says so
        end = 2 + ((data[0] << 8) | data[1])
        topic = data[2:end]
        mid = 0
        if qos:
            mid = (data[end] << 8) | data[end + 1] if end + 2 <= size else 0
            end += 2
        if not topic or end > size:
            return super()._handle_publish()  # malformed, or an MQTT 5 topic alias: paho's way
        if self._protocol == mqtt.MQTTv5:
            # A zero property length is one 0x00 byte; any properties take paho's full path.
            if end >= size or data[end] != 0:
                return super()._handle_publish()
            end += 1
        try:
            handler(topic, data[end:], qos, bool(header & 0x01), mid, bool(header & 0x08))
        except Exception:  # as paho's suppress_exceptions: a bug must not end the network thread
            logger.exception("the bridge's message handler failed")
        return MQTTErrorCode.MQTT_ERR_SUCCESS
