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
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTErrorCode

logger = logging.getLogger(__name__)

PAHO_VERSION = "2.2.0"
# sha256 of inspect.getsource() of the functions FastClient._handle_publish replaces.
STOCK_SOURCES = {
    "Client._handle_publish": "1bbaa3ef0e3afc6dea0423a41e67170930c024827e2e8dbf69b5d61c304b675d",
    "decode_publish": "50c158487fa3d96ecac8944c9c10b2a63d3955970512a2e4fa72f34713d17235",
}

# (topic bytes, payload, qos, retain, mid, dup)
FastHandler = Callable[[bytes, bytes, int, bool, int, bool], None]


def source_digests() -> dict[str, str]:
    functions: dict[str, Callable[..., Any]] = {
        "Client._handle_publish": mqtt.Client._handle_publish,
        "decode_publish": _packet.decode_publish,
    }
    return {name: hashlib.sha256(inspect.getsource(f).encode()).hexdigest() for name, f in functions.items()}


FAST_PATH_OK = paho.mqtt.__version__ == PAHO_VERSION and source_digests() == STOCK_SOURCES


class FastClient(mqtt.Client):
    """paho's Client; with ``fast_handler`` set (and manual acknowledgements), plain QoS 0/1
    PUBLISH packets skip paho's message objects and go to that handler directly."""

    fast_handler: FastHandler | None = None

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
