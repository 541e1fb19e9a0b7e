"""Takes over a dead bridge-group member's broker session, so its share is not stranded.

mosquitto keeps giving a share of the messages to a member's persistent session while the member
is away (measured on 2.0.11: half the traffic of a two-member group): QoS 1/2 ones wait there,
QoS 0 ones are dropped. So the leader, once it finds a member dead (its heartbeat gone), connects
as that member's client id, resumes the session with an expiry of 0, forwards what the broker had
queued for it (acknowledged once Redis holds it), and disconnects: the session ends, and with it
the dead member's share; the live members take all the traffic. A member that comes back later
starts a fresh session and takes a share again. If it comes back during the adoption, the broker
hands it the connection (same client id) and the adopter stops.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.contract import protocol
from bridge.contract.redis_values import count
from bridge.group import membership
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import SYS_FILTER, shared

if TYPE_CHECKING:  # the settings sit above the parts; a part only reads them
    from bridge.config import Settings

logger = logging.getLogger(__name__)

QUIET_END = 2.0  # seconds without a queued message: the session is drained
ADOPT_MAX = 120.0  # an adoption never runs longer than this
BATCH_WAIT = 0.05


class SessionAdopter(threading.Thread):
    def __init__(self, settings: Settings, member: str, client_id: str, sink: RedisSink):
        super().__init__(name=f"adopt-{member}", daemon=True)
        self.settings = settings
        self.member = member
        self.client_id = client_id
        # Its own chunk marks, under the bridge's own names (a named bridge's group drains into
        # mqtt:brokers:<name>:…, never into the unnamed broker's history and channel).
        self.sink = RedisSink(sink.client, sink.history_maxlen, sink.names)
        self.items: deque[tuple[str, bytes, int, bool, float, int, bool]] = deque()
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.session_present = False
        self.forwarded = 0

    def _client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(
                ca_certs=s.tls_ca, certfile=s.tls_cert, keyfile=s.tls_key, cert_reqs=ssl.CERT_REQUIRED
            )
            client.tls_insecure_set(s.tls_insecure)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.ended.set()  # also when the member itself came back and took its client id

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.items.append((msg.topic, bytes(msg.payload), msg.qos, msg.retain, time.time(), msg.mid, msg.dup))

    def run(self) -> None:
        try:
            self._adopt()
        except Exception:  # the leader's other work must go on
            logger.exception("adopting the session of dead member %s failed", self.member)

    def _adopt(self) -> None:
        client = self._client()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0  # the session ends when the adopter leaves
        client.connect(
            self.settings.broker_host, self.settings.broker_port, clean_start=False, properties=properties
        )
        client.loop_start()
        try:
            if not self.connected.wait(10):
                logger.warning("could not connect as dead member %s to take over its session", self.member)
                return
            # At once: the session's plain subscriptions ($SYS/#) are restored on resume, and its
            # shared ones on mosquitto >= 2.0.12. What is queued in the session still comes, new
            # traffic does not.
            client.unsubscribe(self._session_filters())
            if self.session_present:
                self._drain(client)
        finally:
            client.disconnect()
            client.loop_stop()
        logger.info(
            "took over the session of dead member %s: forwarded %d messages it had queued; its share "
            "now goes to the live members",
            self.member,
            self.forwarded,
        )
        self._record()

    def _session_filters(self) -> list[str]:
        """What the dead member's session may hold: $SYS/#, its shared filters (configured and
        added by command), and their plain names (a retained sweep cut short)."""
        group = self.settings.group or ""
        data = [*self.settings.topics, *self.sink.load_subscriptions()]
        return sorted({SYS_FILTER, *data, *(shared(group, f) for f in data)})

    def _drain(self, client: mqtt.Client) -> None:
        started = time.monotonic()
        last_seen = time.monotonic()
        cache: dict[str, str] = {}
        chunk = 0
        while not self.ended.is_set() and time.monotonic() - started < ADOPT_MAX:
            batch = [self.items.popleft() for _ in range(min(len(self.items), 1000))]
            if not batch:
                if time.monotonic() - last_seen > QUIET_END:
                    return
                time.sleep(BATCH_WAIT)
                continue
            data = [i for i in batch if not i[0].startswith("$SYS/")]
            if data:  # a $SYS line that was already on its way is not a queued message
                last_seen = time.monotonic()
            messages = [
                protocol.message_json(t, p, q, r, ts, cache, self.settings.payload_max_bytes, d)
                for t, p, q, r, ts, _mid, d in data
            ]
            chunk += 1
            if messages:
                self.sink.forward_chunk(messages, f"{self.client_id}-{chunk}")
                self.forwarded += len(messages)
            for _t, _p, qos, _r, _ts, mid, _d in batch:
                if qos:
                    client.ack(mid, qos)

    def _record(self) -> None:
        """Count what was forwarded on the dead member's record, so the group's totals add up."""
        record = membership.read_members(self.sink.client, self.sink.names).get(self.member)
        if record is None:
            return
        found = record.get("counters")
        counters: dict[str, Any] = found if isinstance(found, dict) else {}
        for name in ("received", "forwarded"):
            counters[name] = (count(counters.get(name)) or 0) + self.forwarded
        record.update(counters=counters, session_released=True, adopted=self.forwarded)
        if record.get("alive") is False:  # not if it came back meanwhile
            self.sink.client.hset(self.sink.names.KEY_MEMBERS, self.member, protocol.dumps(record))
