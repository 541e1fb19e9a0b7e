"""What the bridge hands paho to publish, and taking it back: a publish answered "failed" never
reaches the broker later, and none is ever sent again on a new connection.

paho keeps every unacknowledged QoS 1/2 PUBLISH (``Client._out_messages``) and sends it again after
each reconnect, and a packet not yet written waits in ``Client._out_packet``. For a command that
has been answered (or has given up), both are wrong: a publish answered "not acknowledged" would
reach a device 20 s later, and one the broker refuses by dropping the connection (too large, say)
would be sent again on every reconnect, for good. So:

- ``OutgoingClient.withdraw`` takes one message back from paho, and says whether any byte of it
  had reached the socket (``MAYBE_SENT``: it may still be delivered, so the answer must say the
  outcome is unknown) or none had (``NOT_SENT``: it never will be);
- ``drop_stale`` (called in ``on_connect``, before paho's resend loop) drops whatever an earlier
  connection left, so nothing is ever resent;
- the reason codes of PUBACK (and PUBREC, for QoS 2) are kept, so a refusal ("Not authorized")
  is reported as one (``refusal``); paho itself only says "published".

This reaches into paho's private state, so like ``fast_publish.py`` it is tied to the paho version
in requirements.lock: ``OUTGOING_OK`` holds only when the version and the source of every function
relied on are exactly those this was written against; tests/unit/bridge/ingest/test_outgoing.py
fails otherwise. Without it the bridge still never resends (``drop_out_messages`` is public API),
but answers "unknown" for every publish that was not acknowledged in time, and cannot read
refusals.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import MessageState, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

logger = logging.getLogger(__name__)

PAHO_VERSION = "2.2.0"
# sha256 of inspect.getsource() of the paho functions whose behaviour this module relies on.
STOCK_SOURCES = {
    "Client.publish": "5c00cd3dcebceaae0eeac2e40402cd18fb64664c78343a6673ce0776a1608ec4",
    "Client._packet_queue": "e298fa9ab31e5f79c1c6d08d303b049db9a2bcf681dcac1cd510b2fb519d3a26",
    "Client._packet_write": "d097b7b51bed128df99bf5e6ba0bc2f502bffbd38cbe136f9d0b1280057ef02b",
    "Client._do_on_publish": "5bbcad6f9447107a5ba9446e6dbdbdf4eedad2734533d900db907240f75b93e4",
    "Client._handle_pubrec": "f2f5486e56c92cfbabd54adc6706abd5f07d4ded355b5a35e57a38967ed7c509",
    "Client._update_inflight": "d11feb21cf855b12bbda2ccccfed5655864a4eec23f19286f4721e5ec31d46b1",
    "Client._messages_reconnect_reset_out": (
        "464a42c69618a49b54ab813a472a2b4cc6b8370daf79f36f91758a0330b1613c"
    ),
    "Client.reconnect": "3ecdf1a8299e8c8ae12b7055a3e47e7dee1b97d257863da5ec43237ef753001a",
    "Client._handle_connack": "39267140212c8b5f9ec69c283f6f9d358249484858b1596bb039c0e8fed1e17c",
    "Client.drop_out_messages": "92bdf6c41de9750df8b040e14178247274d88988d3e8f2efb8540ecb9eb3ab50",
}
_PUBLISH = 0x30
# Message states in which paho counts a message against max_inflight_messages.
_COUNTED = (
    MessageState.MQTT_MS_WAIT_FOR_PUBACK,
    MessageState.MQTT_MS_WAIT_FOR_PUBREC,
    MessageState.MQTT_MS_WAIT_FOR_PUBCOMP,
)
# States of a message never handed to the socket on any connection (unless ``dup`` says so).
_UNSENT = (MessageState.MQTT_MS_QUEUED, MessageState.MQTT_MS_PUBLISH)
_REFUSALS_KEPT = 1000  # refusals nobody asked for (the bridge's own status publishes) are forgotten


def source_digests() -> dict[str, str]:
    return {
        name: hashlib.sha256(inspect.getsource(getattr(mqtt.Client, name.split(".")[1])).encode()).hexdigest()
        for name in STOCK_SOURCES
    }


OUTGOING_OK = paho.mqtt.__version__ == PAHO_VERSION and source_digests() == STOCK_SOURCES


class Withdrawn(enum.Enum):
    """What became of a publish taken back from paho."""

    ACKNOWLEDGED = "acknowledged"  # the broker's answer came first
    NOT_SENT = "not sent"  # no byte of it reached the socket; it never will
    MAYBE_SENT = "maybe sent"  # it had (partly) reached the socket: the broker may have it


class UnknownOutcome(str):
    """An error sentence for a command whose effect is unknown: it may have been carried out (a
    publish sent but never acknowledged). The command's answer says so (``outcome: unknown``)."""


def publish_packet_size(
    topic: bytes, payload_size: int, qos: int, properties: Properties | None, mqtt5: bool
) -> int:
    """The size of the PUBLISH paho would send, fixed header included: what a broker's maximum
    packet size (MQTT 5 CONNACK, mosquitto's max_packet_size) is compared with."""
    remaining = 2 + len(topic) + (2 if qos else 0) + payload_size
    if mqtt5:
        remaining += len(properties.pack()) if properties is not None else 1
    length_bytes = 1
    while remaining >= 128**length_bytes and length_bytes < 4:
        length_bytes += 1
    return 1 + length_bytes + remaining


class OutgoingClient(mqtt.Client):
    """paho's Client, able to take a publish back and to say whether the broker refused one."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Held while paho writes to the socket, so a packet cannot leave while it is withdrawn.
        self._write_lock = threading.RLock()
        self._refusals: dict[mqtt.MQTTMessageInfo, ReasonCode] = {}
        self._refusals_lock = threading.Lock()  # set by paho's thread, read by command threads

    # --- paho's methods, wrapped ----------------------------------------------------------
    def _packet_write(self) -> MQTTErrorCode:
        with self._write_lock:
            return super()._packet_write()

    def _do_on_publish(self, mid: int, reason_code: ReasonCode, properties: Properties) -> MQTTErrorCode:
        # paho holds _out_message_mutex here, and the message is still in _out_messages.
        if OUTGOING_OK and reason_code.is_failure:
            self._refuse(mid, reason_code)
        return super()._do_on_publish(mid, reason_code, properties)

    def _handle_pubrec(self) -> MQTTErrorCode:
        # QoS 2: a refusal comes in PUBREC; paho ignores its reason code and completes anyway.
        if OUTGOING_OK:
            result = _packet.decode_pubrec(
                self._in_packet["command"], self._in_packet["packet"], self._protocol
            )
            if result.reason.is_failure:
                with self._out_message_mutex:
                    self._refuse(result.mid, result.reason)
        return super()._handle_pubrec()

    def _refuse(self, mid: int, reason: ReasonCode) -> None:
        message = self._out_messages.get(mid)
        if message is None:
            return
        with self._refusals_lock:
            if len(self._refusals) >= _REFUSALS_KEPT:
                self._refusals.pop(next(iter(self._refusals)))
            self._refusals.setdefault(message.info, reason)

    # --- used by the bridge -----------------------------------------------------------------
    def refusal(self, info: mqtt.MQTTMessageInfo) -> ReasonCode | None:
        """The broker's refusal of an acknowledged publish (a reason code >= 0x80), if it was one."""
        with self._refusals_lock:
            return self._refusals.pop(info, None)

    def withdraw(self, info: mqtt.MQTTMessageInfo) -> Withdrawn:
        """Take a QoS 1/2 publish back from paho: it is not sent again, on this connection or any
        later one. Says whether it may already have reached the broker."""
        if not OUTGOING_OK:
            return Withdrawn.ACKNOWLEDGED if info.is_published() else Withdrawn.MAYBE_SENT
        with self._out_message_mutex:
            if info.is_published():
                return Withdrawn.ACKNOWLEDGED
            message = self._out_messages.get(info.mid)
            if message is None or message.info is not info:
                # Dropped at a reconnect (drop_stale) after it had been handed to paho.
                return Withdrawn.MAYBE_SENT
            with self._write_lock:  # paho's network thread cannot write meanwhile
                del self._out_messages[info.mid]
                self.refusal(info)  # forgotten with it
                if message.state in _COUNTED:
                    self._inflight_messages -= 1
                sent = self._take_back_packet(info.mid, message)
            if self._max_inflight_messages > 0:
                self._update_inflight()  # a publish queued behind this one may go now
        return Withdrawn.MAYBE_SENT if sent else Withdrawn.NOT_SENT

    def _take_back_packet(self, mid: int, message: mqtt.MQTTMessage) -> bool:
        """Remove the message's PUBLISH from the write queue if none of it was written; True when
        some of it may have reached the socket (then it stays: a half-written packet must be
        finished, or the stream breaks)."""
        if message.state in _UNSENT and not message.dup:
            return False  # never handed to the socket (queued behind the in-flight limit, say)
        for packet in list(self._out_packet):  # a copy: other threads may append meanwhile
            if packet["command"] & 0xF0 == _PUBLISH and packet["mid"] == mid:
                if packet["pos"] == 0 and not message.dup:
                    with contextlib.suppress(ValueError):  # cleared by a reconnect meanwhile: gone too
                        self._out_packet.remove(packet)
                    return False
                return True
        return True  # written whole (paho pops a packet once it is written)


def drop_stale(client: mqtt.Client) -> int:
    """Drop every publish an earlier connection left in paho (call from ``on_connect``, before
    paho's resend loop): none is ever sent again. Their commands have been, or will be, answered
    (a withdrawn one as "unknown" when it had been sent). Returns how many were dropped."""
    dropped = client.drop_out_messages()  # public API
    if isinstance(client, OutgoingClient):
        for message in dropped:
            client.refusal(message.info)  # forgotten with it
    return len(dropped)


def withdraw(client: mqtt.Client, info: mqtt.MQTTMessageInfo) -> Withdrawn:
    """``OutgoingClient.withdraw`` for any client; a plain paho client cannot tell."""
    if isinstance(client, OutgoingClient):
        return client.withdraw(info)
    return Withdrawn.ACKNOWLEDGED if info.is_published() else Withdrawn.MAYBE_SENT


def refusal(client: mqtt.Client, info: mqtt.MQTTMessageInfo) -> ReasonCode | None:
    return client.refusal(info) if isinstance(client, OutgoingClient) else None


def send(
    client: mqtt.Client,
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    properties: Properties | None,
    timeout: float,
    link_lost: Callable[[], bool],
) -> str | None:
    """Publish and, for QoS > 0, wait up to ``timeout`` for the broker's acknowledgement (or until
    ``link_lost()``). None on success; else why not, in words: an ``UnknownOutcome`` when it may
    have reached the broker all the same. One not acknowledged in time is withdrawn: never sent
    later."""
    info = client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        if qos and info.rc == mqtt.MQTT_ERR_NO_CONN:
            withdraw(client, info)  # paho kept it, to send after the next connect
        return f"publish failed: {mqtt.error_string(info.rc)}; nothing was published"
    if qos == 0:
        return None
    acknowledged = wait_acknowledged(info, timeout, link_lost)
    withdrawn = Withdrawn.ACKNOWLEDGED if acknowledged else withdraw(client, info)
    if withdrawn is Withdrawn.ACKNOWLEDGED:
        refused = refusal(client, info)
        return None if refused is None else f"the broker refused the publish: {refused}"
    why = (
        "the connection to the broker was lost before it acknowledged the publish"
        if link_lost()
        else f"the broker did not acknowledge the publish within {timeout:g} s"
    )
    if withdrawn is Withdrawn.NOT_SENT:
        return f"{why}; it was never sent, and the bridge will not send it later"
    return UnknownOutcome(
        f"{why}; it had already been sent, so it may still reach subscribers "
        "(the bridge will not send it again)"
    )


def wait_acknowledged(info: mqtt.MQTTMessageInfo, timeout: float, link_lost: Callable[[], bool]) -> bool:
    """Wait for the broker's acknowledgement of ``info`` for up to ``timeout`` seconds, or until
    ``link_lost()`` says the connection went; True when it came."""
    deadline = time.monotonic() + timeout
    while not info.is_published():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or link_lost():
            return info.is_published()
        info.wait_for_publish(min(0.1, remaining))
    return True
