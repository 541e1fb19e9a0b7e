"""The bridge's one MQTT connection: paho-mqtt 2.x, network loop in paho's own thread.

The paho thread never does Redis I/O. Received messages become plain tuples in a deque bounded
in count and bytes (``ingest/queue.py``), payloads and properties already cut to their budgets
(or a drop is counted); connection changes go to the housekeeping thread as events.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from bridge.contract.mqtt5_properties import NEEDS_MQTT5, from_paho, to_paho
from bridge.ingest import outgoing, queue, wire
from bridge.ingest.budgets import cap_properties
from bridge.ingest.counters import Counters
from bridge.ingest.dedup import CopyFilter, can_overlap
from bridge.ingest.fast_publish import FAST_PATH_OK, FastClient
from bridge.ingest.outgoing import OUTGOING_OK, OutgoingClient
from bridge.ingest.session import SessionFilters
from bridge.ingest.subscriptions import SYS_FILTER, is_data_filter, shared

if TYPE_CHECKING:  # the settings sit above the parts; a part only reads them
    from bridge.config import Settings

logger = logging.getLogger(__name__)

# (topic, payload, qos, retain, timestamp, mid, dup): a plain tuple costs the paho thread less
# than keeping paho's MQTTMessage alive (measured: 10-25 % of its per-message time). ``mid`` is
# what the writer acknowledges once Redis holds a QoS >= 1 message; ``dup`` marks a redelivery.
# A message with MQTT 5 properties (rare, and never on the fast path) carries them as an eighth
# element, so the common message pays nothing for them. A payload cut to PAYLOAD_MAX_BYTES before
# queueing carries its size as received as a ninth (properties None if it had none), and
# properties cut to PROPERTIES_MAX_BYTES their JSON size before the cut as a tenth.
Item = (
    tuple[str, bytes, int, bool, float, int, bool]
    | tuple[str, bytes, int, bool, float, int, bool, dict[str, Any] | None]
    | tuple[str, bytes, int, bool, float, int, bool, dict[str, Any] | None, int]
    | tuple[str, bytes, int, bool, float, int, bool, dict[str, Any] | None, int, int | None]
)

SUBACK_TIMEOUT = 3.0  # below the dashboard's 5 s wait for an answer (see commands.py)
# Group mode: the leader's short plain subscription that fetches retained messages (shared
# subscribers get none from mosquitto >= 2.0.13). Its own identifier, far above CopyFilter's.
RETAINED_SWEEP_ID = 268_435_455


class BridgeClient(FastClient, OutgoingClient):
    """paho's Client with the lean PUBLISH path (fast_publish.py) and publishes it can take back
    (outgoing.py)."""


# MQTT 5 DISCONNECT reason: another connection took over this client id (mosquitto >= 2.1 sends it;
# 2.0 only closes the socket, which reads as a lost connection).
SESSION_TAKEN_OVER = 0x8E


@dataclass(frozen=True)
class LinkEvent:
    """A change of the broker connection, for the housekeeping thread."""

    connected: bool
    reason: str | None


def _expected_after_disconnect(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Client is not connected")


class MqttSource:
    def __init__(
        self,
        settings: Settings,
        counters: Counters,
        items: deque[Item],
        queue_maxsize: int,
        on_link_event: Callable[[LinkEvent], None],
        wanted_filters: Callable[[], Iterable[tuple[str, int]]],
        *,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
    ):
        self.settings = settings
        self.counters = counters
        self._items = items
        self._maxsize = queue_maxsize
        self._on_link_event = on_link_event
        self._wanted_filters = wanted_filters
        self._connected = threading.Event()
        self._ever_connected = False
        # What the latest on_connect subscribed, so filters restored later can be told apart.
        self.connect_filters: set[str] = set()
        self._suback_waiters: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._connect_pending: set[int] = set()  # SUBACKs the current connection still waits for
        self.copies = CopyFilter()
        self._lock = threading.Lock()
        self.session = SessionFilters()  # what the broker holds in the bridge's session
        self._accepting = True
        # QoS >= 1 messages wait unacknowledged, so the broker's Receive Maximum bounds them: they
        # may pass QUEUE_MAXSIZE by that many before one is refused (and left to the broker).
        self._acked_maxsize = queue_maxsize + settings.receive_maximum
        self._budget = queue.budget_of(items)  # QUEUE_MAX_BYTES, when the queue has a budget
        self._reconnect_range = (reconnect_min, reconnect_max)
        self._leaving_reason: str | None = None
        self._links_lost = 0  # counts connection losses, so a publish waiting for its PUBACK can tell
        self._broker_max_packet: int | None = None  # the broker's Maximum Packet Size (MQTT 5 CONNACK)
        self._group = settings.group
        # In a group every member has its own status topic, so one dead member (its will) does
        # not mark the group offline.
        self.status_topic = (
            f"{settings.status_topic}/{settings.member}" if settings.group else settings.status_topic
        )
        self.client = self._make_client(reconnect_min, reconnect_max)

    # --- set-up ---------------------------------------------------------------------------
    def _make_client(self, reconnect_min: float, reconnect_max: float) -> mqtt.Client:
        s = self.settings
        protocol = mqtt.MQTTv5 if s.protocol == 5 else mqtt.MQTTv311
        # A persistent session and acknowledgements sent by the writer once Redis holds a message
        # (manual_ack): what the bridge has not written, the broker delivers again (at-least-once).
        client = BridgeClient(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=protocol,
            clean_session=(s.session_expiry == 0) if protocol == mqtt.MQTTv311 else None,
            manual_ack=True,
        )
        if FAST_PATH_OK:  # else stock paho, slower but the same (see bridge/fast_publish.py)
            client.fast_handler = self._on_publish
            if wire.COMPILED:  # whole socket reads at a time (bridge/ingest/wire.py)
                client.batch_handler = self._on_items
                client.max_payload = s.payload_max_bytes
                client.retain_slow = self._group is not None  # each one checked by _on_publish
        else:
            logger.warning("paho-mqtt is not version 2.2.0 as locked: the lean PUBLISH path is off")
        if not OUTGOING_OK:
            logger.warning(
                "paho-mqtt is not version 2.2.0 as locked: a publish the broker does not acknowledge in "
                "time is answered 'unknown', and refusals in PUBACK are not read"
            )
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(
                ca_certs=s.tls_ca, certfile=s.tls_cert, keyfile=s.tls_key, cert_reqs=ssl.CERT_REQUIRED
            )
            client.tls_insecure_set(s.tls_insecure)
        client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=reconnect_min, max_delay=reconnect_max)  # type: ignore[arg-type]
        # Outgoing only (command publishes); what the broker may queue for the bridge is set by its
        # max_queued_messages (see docs/mosquitto.md).
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_subscribe  # UNSUBACK carries the same (mid, reason codes)
        client.on_message = self._on_message
        client.suppress_exceptions = True  # a bug in a callback must not kill the network thread
        client.enable_logger(logging.getLogger("paho"))
        return client

    def start(self) -> None:
        logger.info("connecting to MQTT broker %s as %r", self.settings.broker, self.settings.client_id)
        s = self.settings
        if s.protocol == 5:
            properties = Properties(PacketTypes.CONNECT)
            properties.ReceiveMaximum = s.receive_maximum
            if s.session_expiry:
                properties.SessionExpiryInterval = s.session_expiry
            self.client.connect_async(
                s.broker_host,
                s.broker_port,
                keepalive=s.keepalive,
                clean_start=s.session_expiry == 0,
                properties=properties,
            )
        else:
            self.client.connect_async(s.broker_host, s.broker_port, keepalive=s.keepalive)
        self.client.loop_start()

    def restart(self, settings: Settings | None = None, reason: str | None = None) -> None:
        """Drop the connection and make a new one (``cmd_reconnect``), with new ``settings`` when
        given (``cmd_configure``). Called from a command thread; the old client's loop is stopped
        before the new one starts, so only one connection exists at a time."""
        old = self.client
        self._leaving_reason = reason  # what the status says while the new connection is made
        old.disconnect()
        old.loop_stop()
        self._leaving_reason = None
        with contextlib.suppress(OSError, ValueError):  # a connect that never finished
            sock = old.socket()
            if sock is not None:
                sock.close()
        self._connected.clear()
        if settings is not None:
            self.settings = settings
            self._acked_maxsize = self._maxsize + settings.receive_maximum
        self.client = self._make_client(*self._reconnect_range)
        self.start()

    def pause(self) -> None:
        """At shutdown: take no more messages (QoS >= 1 ones stay the broker's, for the next
        start), so the writer can write and acknowledge what it holds before the disconnect."""
        self._accepting = False

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a QoS >= 1 message (writer thread, after Redis holds it). Sent on a later
        connection it is harmless: the broker then acknowledges the redelivered copy."""
        self.client.ack(mid, qos)

    def ack_items(self, items: list[Item], start: int, end: int) -> None:
        """Acknowledge the QoS >= 1 messages of items[start:end] (writer thread): their PUBACKs go
        out as one buffer, as paho's ``ack`` would have sent them one by one."""
        client = self.client
        if not isinstance(client, FastClient) or not FAST_PATH_OK:
            for item in items[start:end]:
                if item[2]:
                    client.ack(item[5], item[2])
            return
        packet, qos2 = wire.pubacks(items, start, end)
        client.queue_pubacks(packet)
        for mid in qos2:
            client.ack(mid, 2)

    def stop(self, timeout: float = 2.0) -> None:
        """Say 'offline' on the status topic (the will only fires on an unclean loss), then leave."""
        if self.is_connected():
            info = self.client.publish(self.status_topic, b"offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        # paho's network thread makes one more pass after the disconnect asked for here and logs
        # "Client is not connected" as an error: at shutdown that is expected, so it is not shown.
        logging.getLogger("paho").addFilter(_expected_after_disconnect)
        self.client.disconnect()
        self.client.loop_stop()

    def is_connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # --- paho callbacks (paho thread) -------------------------------------------------------
    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # The hot path: keep it to a length check and one append.
        if self._group is not None and not self._group_copy_wanted(msg):
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            return
        if self.copies.active and not self._first_copy(msg):
            if msg.qos:
                client.ack(msg.mid, msg.qos)  # a second copy: the first is acknowledged when written
            return
        if not self._accepting:
            return  # shutting down; not acknowledged, so a QoS >= 1 message comes again next time
        self.counters.received += 1
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # mosquitto rejects these, other brokers may not
            topic = msg._topic.decode("utf-8", "replace")
        properties = from_paho(msg.properties) if msg.properties is not None else None
        self._offer(topic, bytes(msg.payload), msg.qos, msg.retain, msg.mid, msg.dup, properties)

    def _offer(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        mid: int,
        dup: bool,
        properties: dict[str, Any] | None = None,
    ) -> None:
        """Queue one message with its payload and properties cut to their budgets, or count it
        dropped: a QoS >= 1 one is then not acknowledged, so the broker delivers it again after
        the next reconnect."""
        size = len(payload)
        cut = size > self.settings.payload_max_bytes
        if cut:
            payload = payload[: self.settings.payload_max_bytes]
        properties_size = None
        if properties is not None:
            properties, properties_size = cap_properties(properties, self.settings.properties_max_bytes)
        item: Item
        if properties_size is not None:
            item = (topic, payload, qos, retain, time.time(), mid, dup, properties, size, properties_size)
        elif cut:
            item = (topic, payload, qos, retain, time.time(), mid, dup, properties, size)
        elif properties is not None:
            item = (topic, payload, qos, retain, time.time(), mid, dup, properties)
        else:
            item = (topic, payload, qos, retain, time.time(), mid, dup)
        if not self._room(qos, 1, wire.item_weight(item)):
            self.counters.dropped_queue += 1
            return
        self._items.append(item)
        if self._budget is not None:
            self._budget.added(wire.item_weight(item))

    def _room(self, qos: int, count: int, weight: int) -> bool:
        """Whether ``count`` more messages of ``weight`` bytes in all fit in the queue. QoS >= 1
        ones may pass the count by Receive Maximum messages (the broker bounds those) and the
        bytes by QUEUE_MAX_BYTES again: one refused stays unacknowledged, and so holds one of the
        broker's Receive Maximum slots until the next reconnect."""
        if len(self._items) + count > (self._acked_maxsize if qos else self._maxsize):
            return False
        budget = self._budget
        return budget is None or budget.room(weight, budget.max_bytes if qos else 0)

    def _on_items(self, items: list[Item]) -> None:
        """The compiled path (``FastClient._packet_read``): plain PUBLISH packets of one socket
        read, as items with their payloads already cut. Such a message has no properties and no
        ``$`` topic, and in a group no retain flag, so only the queue's limits apply."""
        if not self._accepting:
            return  # shutting down; not acknowledged, so a QoS >= 1 message comes again next time
        count = len(items)
        self.counters.received += count
        weight = wire.weigh(items)
        if self._room(0, count, weight):
            self._items.extend(items)
            if self._budget is not None:
                self._budget.added(weight)
            return
        for item in items:  # the queue is (nearly) full: one at a time, QoS >= 1 ones may pass
            one = wire.item_weight(item)
            if self._room(item[2], 1, one):
                self._items.append(item)
                if self._budget is not None:
                    self._budget.added(one)
            else:
                self.counters.dropped_queue += 1

    def _on_publish(self, topic: bytes, payload: bytes, qos: int, retain: bool, mid: int, dup: bool) -> None:
        """The hot path for a PUBLISH without MQTT 5 properties (bridge/fast_publish.py). Such a
        message carries no subscription identifier, so there is no second copy to tell apart."""
        if retain and self._group is not None and not topic.startswith(b"$SYS/"):
            # A retained message on a shared subscription (mosquitto 2.0.11 sends them to every
            # member): the leader's retained sweep forwards it once, so this copy is dropped.
            if qos:
                self.client.ack(mid, qos)
            return
        if not self._accepting:
            return  # shutting down; not acknowledged, so a QoS >= 1 message comes again next time
        self.counters.received += 1
        try:
            text = topic.decode("utf-8")
        except UnicodeDecodeError:  # mosquitto rejects these, other brokers may not
            text = topic.decode("utf-8", "replace")
        self._offer(text, payload, qos, retain, mid, dup)

    def _group_copy_wanted(self, msg: mqtt.MQTTMessage) -> bool:
        """Group mode: retained messages count only from the leader's sweep; the sweep's live
        (not retained) copies are the shared subscription's to forward."""
        identifiers = getattr(msg.properties, "SubscriptionIdentifier", None) or ()
        if RETAINED_SWEEP_ID in identifiers:
            return bool(msg.retain)
        return not msg.retain or msg._topic.startswith(b"$SYS/")

    def sweep_retained(self, filters: list[str] | None = None) -> str | None:
        """Leader, group mode: subscribe the data filters plainly so the broker sends their
        retained messages once, to this member, and unsubscribe them in the same breath.

        Why the UNSUBSCRIBE can follow at once (mosquitto's source, 2.0.11 to 2.1): the broker
        handles one client's packets in order, and ``handle__subscribe`` queues every retained
        match for this client (``retain__queue``) before it even sends the SUBACK; ``sub__remove``
        then takes away the subscription only, never what is queued. So every retained message is
        on its way before the UNSUBSCRIBE is read, and live messages reach the plain filter only
        in the moment between the two packets (those copies are dropped: ``_group_copy_wanted``).
        A sweep that stayed subscribed for seconds brought the leader every message twice, the
        second copy through paho's slow path, and cut a fresh group's rate to 0.2 x its settled one."""
        if filters is None:
            filters = [f for f, _ in self._wanted_filters() if is_data_filter(f)]
        if not filters or not self.is_connected():
            return None
        properties = Properties(PacketTypes.SUBSCRIBE)
        properties.SubscriptionIdentifier = RETAINED_SWEEP_ID
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
        result, _ = self.client.subscribe([(f, options) for f in filters], properties=properties)
        if result != mqtt.MQTT_ERR_SUCCESS:
            return f"retained sweep failed: {mqtt.error_string(result)}"
        # The plain names only: the member's $share/<group>/… subscriptions stay. Should this
        # fail (the connection just dropped), the next connect unsubscribes them (_on_connect).
        result, _ = self.client.unsubscribe(filters)
        logger.info("leader: fetched the retained messages of %d filters", len(filters))
        if result != mqtt.MQTT_ERR_SUCCESS:
            return f"retained sweep could not unsubscribe: {mqtt.error_string(result)} (done on reconnect)"
        return None

    def _broker_name(self, topic_filter: str) -> str:
        return topic_filter if self._group is None else shared(self._group, topic_filter)

    def _first_copy(self, msg: mqtt.MQTTMessage) -> bool:
        identifiers = getattr(msg.properties, "SubscriptionIdentifier", None)
        try:
            return not identifiers or self.copies.is_first_copy(msg.topic, identifiers)
        except UnicodeDecodeError:
            return True

    def _subscribe_with_id(self, topic_filter: str, qos: int) -> tuple[Any, int | None]:
        """SUBSCRIBE one filter under its own MQTT 5 subscription identifier. Only filters that
        overlap another get one: an identifier in every PUBLISH costs paho's thread parsing time
        (measured: 0.82 x the bare paho rate fell to 0.58 x with identifiers on a lone filter).
        Retain handling 1: re-subscribing an existing filter does not replay retained messages."""
        properties = Properties(PacketTypes.SUBSCRIBE)
        properties.SubscriptionIdentifier = self.copies.assign(topic_filter)
        options = SubscribeOptions(qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        return self.client.subscribe(self._broker_name(topic_filter), options=options, properties=properties)

    def _overlapping(self, filters: list[str]) -> set[str]:
        if self.settings.protocol != 5:  # over 3.1.1 mosquitto sends one copy by itself
            return set()
        return {a for a in filters for b in filters if a != b and can_overlap(a, b)}

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        # Before paho's own resend loop (it runs after this callback): nothing an earlier connection
        # left is sent again; its commands were answered, or are told the connection was lost.
        dropped = outgoing.drop_stale(client)
        if dropped:
            logger.info("dropped %d unacknowledged publishes of the last connection (never resent)", dropped)
        self._broker_max_packet = getattr(props, "MaximumPacketSize", None) if props is not None else None
        if rc.is_failure:
            self._on_link_event(LinkEvent(False, f"broker refused the connection: {rc}"))
            return
        if self._ever_connected:
            self.counters.reconnects += 1
        self._ever_connected = True
        filters = [(SYS_FILTER, 0), *self._wanted_filters()]
        self.connect_filters = {f for f, _ in filters}
        resumed = bool(getattr(flags, "session_present", False))
        logger.info(
            "connected to %s (%s); subscribing to %d filters",
            self.settings.broker,
            "resumed session" if resumed else "new session",
            len(filters),
        )
        self.copies.reset()
        overlapping = self._overlapping([f for f, _ in filters])
        # Every connect subscribes the whole set again: mosquitto 2.0.11 does not restore a
        # resumed session's shared subscriptions (fixed in 2.0.12).
        plain = [(self._broker_name(f), q) for f, q in filters if f not in overlapping]
        sends: list[Callable[[], tuple[Any, int | None]]] = [lambda: client.subscribe(plain)] if plain else []
        sends += [partial(self._subscribe_with_id, f, q) for f, q in filters if f in overlapping]
        stale = self.session.connected(resumed, self.connect_filters)
        if stale:
            # The broker kept these from the last run (MQTT_TOPICS changed, or an unsubscribe
            # command came while the bridge was away): without this they would go on forwarding.
            logger.info("unsubscribing %d filters the resumed session still held: %s", len(stale), stale)
            sends.append(lambda: client.unsubscribe([self._broker_name(f) for f in stale]))
        sweep_left = [f for f, _ in filters if self._group is not None and is_data_filter(f)]
        if sweep_left:
            # A member killed during a retained sweep left its plain subscriptions in its
            # session; resumed, they would bring it every message. Drop them (a no-op otherwise).
            sends.append(lambda: client.unsubscribe(sweep_left))
        if self.session.resumed_unknown:
            logger.warning("resumed a session before its saved filters could be read; checked later")
        with self._lock:  # held so no SUBACK is handled before every mid is known
            self._connect_pending.clear()
            for send in sends:
                result, mid = send()
                if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
                    self._on_link_event(LinkEvent(False, f"subscribe failed: {mqtt.error_string(result)}"))
                    return
                self._connect_pending.add(mid)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._on_link_event(LinkEvent(False, f"cannot reach the broker at {self.settings.broker}"))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._links_lost += 1
        with self._lock:
            for event, box in self._suback_waiters.values():
                box.append(None)
                event.set()
            self._suback_waiters.clear()
        reason = self._leaving_reason or "disconnected by the bridge"
        if rc.is_failure:
            reason = self._loss_reason(rc)
        if was_connected:
            logger.warning("disconnected from %s: %s", self.settings.broker, reason)
        self._on_link_event(LinkEvent(False, reason))

    def _loss_reason(self, rc: ReasonCode) -> str:
        # paho reports a closed socket or a missed keepalive as "Unspecified error": say what it means.
        if rc.value == 0x80:
            return f"lost the connection to {self.settings.broker} (the broker closed it or went quiet)"
        if rc.value == SESSION_TAKEN_OVER:
            return (
                f"another client connected to {self.settings.broker} with this bridge's client id "
                f"({self.settings.client_id}) and took over its session; is a second bridge or a device "
                "using the same MQTT_CLIENT_ID? The bridge reconnects and takes it back"
            )
        return f"the broker at {self.settings.broker} ended the connection: {rc}"

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode], props: Any
    ) -> None:
        with self._lock:
            waiter = self._suback_waiters.pop(mid, None)
            connect_ack = mid in self._connect_pending
            self._connect_pending.discard(mid)
            all_acked = connect_ack and not self._connect_pending
        if connect_ack:
            refused = [str(code) for code in reason_codes if code.is_failure]
            if refused:
                logger.warning("the broker refused one of the bridge's subscriptions: %s", refused)
            if all_acked:  # "connected" means every subscription is in place (DESIGN.md)
                client.publish(self.status_topic, b"online", qos=1, retain=True)
                self._connected.set()
                self._on_link_event(LinkEvent(True, None))
            return
        if waiter is None:
            return
        event, box = waiter
        box.append(reason_codes)
        event.set()

    # --- used by the command thread ---------------------------------------------------------
    def subscribe(self, topic_filter: str, qos: int, timeout: float = SUBACK_TIMEOUT) -> str | None:
        """Subscribe and wait for the SUBACK; None on success, else why it failed."""
        wanted = {SYS_FILTER: 0, **dict(self._wanted_filters())}
        clashing = [f for f in wanted if f != topic_filter and f in self._overlapping([f, topic_filter])]
        error = self._subscribe(topic_filter, qos, timeout, wanted, clashing)
        if error is None:
            self.session.update(add=[topic_filter, *clashing])
        return error

    def _subscribe(
        self, topic_filter: str, qos: int, timeout: float, wanted: dict[str, int], clashing: list[str]
    ) -> str | None:
        if not clashing:
            return self._request(
                lambda: self.client.subscribe(self._broker_name(topic_filter), qos), timeout, "subscribe"
            )
        # Give the filters it overlaps an identifier too, so one copy can be told from another.
        for other in clashing:
            if not self.copies.has(other):
                error = self._request(
                    partial(self._subscribe_with_id, other, wanted[other]), timeout, "subscribe"
                )
                if error is not None:
                    return error
        return self._request(partial(self._subscribe_with_id, topic_filter, qos), timeout, "subscribe")

    def unsubscribe(self, topic_filter: str, timeout: float = SUBACK_TIMEOUT) -> str | None:
        self.copies.forget(topic_filter)
        error = self._request(
            lambda: self.client.unsubscribe(self._broker_name(topic_filter)), timeout, "unsubscribe"
        )
        if error is None:
            self.session.update(remove=[topic_filter])
        return error

    def _request(self, send: Callable[[], tuple[Any, int | None]], timeout: float, what: str) -> str | None:
        event = threading.Event()
        box: list[Any] = []
        with self._lock:
            result, mid = send()
            if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
                return f"{what} failed: {mqtt.error_string(result)}"
            self._suback_waiters[mid] = (event, box)
        if not event.wait(timeout):
            with self._lock:
                self._suback_waiters.pop(mid, None)
            return f"the broker did not acknowledge the {what} within {timeout:g} s"
        codes = box[0] if box else None
        if codes is None:
            return f"the connection to the broker was lost before the {what} was acknowledged"
        # "No subscription existed" (MQTT 5) means the unsubscribe's goal is already met.
        refused = [code for code in codes if code.is_failure and code.value != 0x11]
        if refused:
            return f"the broker refused the {what}: {refused[0]}"
        return None

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        timeout: float,
        properties: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Publish; for QoS > 0 wait for the broker's acknowledgement. None on success, else why
        not, in words; an ``UnknownOutcome`` when it may have reached the broker all the same.
        ``properties`` are MQTT 5 ones already checked (bridge/mqtt5_properties.py).

        A publish that is not acknowledged in time is taken back from paho (outgoing.py): it is
        never sent later, and the answer says whether it may already have been delivered."""
        if properties and self.settings.protocol != 5:
            return NEEDS_MQTT5
        if not self.is_connected():
            return f"the broker at {self.settings.broker} is not connected; nothing was published"
        packed = to_paho(properties or {})
        limit = self.max_packet_size()
        if limit is not None:
            size = outgoing.publish_packet_size(
                topic.encode("utf-8"), len(payload), qos, packed, self.settings.protocol == 5
            )
            if size > limit[0]:
                # Sent anyway, the broker would drop the connection (mosquitto does).
                return (
                    f"the message is {size:,} bytes as an MQTT packet, and the broker at "
                    f"{self.settings.broker} takes at most {limit[0]:,} ({limit[1]}); nothing was published"
                )
        lost_before = self._links_lost
        return outgoing.send(
            self.client, topic, payload, qos, retain, packed, timeout, lambda: self._links_lost != lost_before
        )

    def max_packet_size(self) -> tuple[int, str] | None:
        """The largest packet the broker takes, and where that figure comes from; None = no limit
        known but MQTT's own."""
        limits = []
        if self._broker_max_packet:
            limits.append(
                (self._broker_max_packet, "the maximum packet size it announced when the bridge connected")
            )
        if self.settings.max_packet_size:
            limits.append((self.settings.max_packet_size, "MQTT_MAX_PACKET_SIZE"))
        return min(limits) if limits else None
