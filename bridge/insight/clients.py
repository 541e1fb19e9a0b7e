"""The live client list, rebuilt from mosquitto's log lines on ``$SYS/broker/log/#``, and marked
where the broker itself confirms an entry (``insight/live_connections.py``).

With ``log_dest topic`` mosquitto publishes a line per connect and disconnect, worded differently
by 2.0 and 2.1 (recordings of both: ``tests/unit/bridge/insight/mosquitto_recordings/``)::

    New client connected from 10.0.0.5:52144 as sensor-1 (p2, c1, k60, u'alice').     2.0 and 2.1
    New bridge connected from 10.0.0.6:40112 as edge.to-main (p4, c1, k60).           2.0 and 2.1
    Client sensor-1 closed its connection.                                            2.0
    Client sensor-1 has exceeded timeout, disconnecting.                               2.0
    Client sensor-1 [10.0.0.5:52144] disconnected: connection closed by client.        2.1

Clients connected before the bridge first started appear only when they reconnect; a restarted
bridge takes up the list it last published (``restore``), unless the broker restarted meanwhile.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from bridge.insight.live_connections import LiveConnections

LOG_PREFIX = "$SYS/broker/log/"
MAX_CLIENTS = 100_000  # a guard against a flood of fake ids, far above any real broker here

_TIMESTAMP = re.compile(r"^\d+: ")
_CONNECTED = re.compile(
    r"^New (?P<kind>client|bridge) connected from (?P<address>\S+) as (?P<id>.+) "
    r"\(p(?P<protocol>\d+), c(?P<clean>\d), k(?P<keepalive>\d+)(?:, u'(?P<username>.*)')?\)\.?$"
)
_CLIENT_LINE = re.compile(r"^Client (?P<rest>.+)$")
_SOCKET_ERROR = re.compile(r"^Socket error on client (?P<id>.+), disconnecting\.$")
# What follows the client id when mosquitto says a client left. 2.1 puts the connection's address
# first and a reason after a colon; 2.0 has one sentence per reason. A reason never holds a
# bracket, so an id that spells "[address] disconnected: …" cannot pass for a shorter one's line.
_GONE_TAIL = re.compile(
    r"^(?:\[(?P<address>[^\[\]]*)\] )?"
    r"(?:disconnected(?:\.|: [^\[\]]*|, not authorised\.| due to [^\[\]]*\.)"  # 2.1 and 2.0
    r"|closed its connection\.|has exceeded timeout, disconnecting\."  # 2.0
    r"|been disconnected by administrative action\.|already connected, closing old connection\.)$"  # 2.0
)
# The protocol number in "(p4, …)". Mosquitto 2.0 logs its internal numbers (1 = 3.1, 2 = 3.1.1),
# 2.1 the protocol level of CONNECT (3 = 3.1, 4 = 3.1.1); 5 is MQTT 5 in both. 2.0's 3 (MQTT-SN)
# and 2.1's 1 are never logged for a connection, so one table reads both lines.
PROTOCOLS = {"1": "MQTT 3.1", "2": "MQTT 3.1.1", "3": "MQTT 3.1", "4": "MQTT 3.1.1", "5": "MQTT 5"}


@dataclass(frozen=True)
class Client:
    client_id: str
    address: str
    username: str | None
    protocol: str
    keepalive: int
    connected_at: float
    bridge: bool = False  # another broker's bridge ("New bridge connected")


class ClientTracker:
    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        # Entries taken up from Redis: their address was not seen connecting in this run, so a
        # disconnect line naming another address may still be theirs (see _gone).
        self._restored: set[str] = set()
        self._live: LiveConnections | None = None
        self.changed = False

    def update(self, topic: str, payload: bytes, now: float) -> bool:
        """Fold in one log line; True when the client list changed."""
        if not topic.startswith(LOG_PREFIX):
            return False
        line = _TIMESTAMP.sub("", payload.decode("utf-8", "replace").strip(), count=1)
        connected = _CONNECTED.match(line)
        if connected:
            if len(self._clients) >= MAX_CLIENTS and connected["id"] not in self._clients:
                return False
            self._clients[connected["id"]] = Client(
                client_id=connected["id"],
                address=connected["address"],
                username=connected["username"],
                protocol=PROTOCOLS.get(connected["protocol"], f"p{connected['protocol']}"),
                keepalive=int(connected["keepalive"]),
                connected_at=now,
                bridge=connected["kind"] == "bridge",
            )
            self._restored.discard(connected["id"])
            self.changed = True
            return True
        client_id = self._gone(line)
        if client_id is not None:
            del self._clients[client_id]
            self._restored.discard(client_id)
            self.changed = True
            return True
        return False

    def _gone(self, line: str) -> str | None:
        """The tracked client a "gone" line is about, if any.

        A client id may contain spaces and our own keywords: ``Client victim disconnected
        disconnected.`` is about ``victim disconnected``, not ``victim``. So every split of the
        line into id + known ending is tried, and the longest id we track wins. Where the line
        names the connection's address (2.1), it must be the address the client connected from:
        a line about an older connection of the same id, or spelled by another client, is not
        about this one.
        """
        socket_error = _SOCKET_ERROR.match(line)
        if socket_error:
            return socket_error["id"] if socket_error["id"] in self._clients else None
        client = _CLIENT_LINE.match(line)
        if not client:
            return None
        rest = client["rest"]
        tracked = []
        for i, char in enumerate(rest):
            tail = _GONE_TAIL.match(rest[i + 1 :]) if char == " " else None
            entry = self._clients.get(rest[:i]) if tail else None
            if entry is None or tail is None:
                continue
            address = tail["address"]
            if address is None or address == entry.address or entry.client_id in self._restored:
                tracked.append(entry.client_id)
        return max(tracked, key=len) if tracked else None

    def confirm(self, live: LiveConnections | None) -> bool:
        """Take what the broker's dynamic-security plugin last said about live connections (None:
        it cannot say) for ``broker_confirmed``; True when that changes an entry."""
        before = self._confirmed()
        self._live = live
        if self._confirmed() == before:
            return False
        self.changed = True
        return True

    def _confirmed(self) -> dict[str, bool | None]:
        return self._live.confirm(list(self._clients.values())) if self._live is not None else {}

    def restore(self, records: object) -> int:
        """Take up a list this tracker published before (``clients`` of ``mqtt:clients:latest``).

        It comes from Redis, so anything may be in it: records that are not what ``snapshot``
        writes are skipped. Returns how many were taken up.
        """
        if not isinstance(records, list):
            return 0
        for record in records[:MAX_CLIENTS]:
            client = _client_from(record)
            if client is not None and client.client_id not in self._clients:
                self._clients[client.client_id] = client
                self._restored.add(client.client_id)
                self.changed = True
        return len(self._clients)

    def clear(self) -> None:
        """The broker restarted: every client it had is gone."""
        if self._clients:
            self._clients.clear()
            self._restored.clear()
            self.changed = True

    def __len__(self) -> int:
        return len(self._clients)

    def snapshot(self) -> list[dict[str, Any]]:
        clients = sorted(self._clients.values(), key=lambda c: c.client_id)
        confirmed = self._confirmed()
        return [{**asdict(c), "broker_confirmed": confirmed.get(c.client_id)} for c in clients]


def _client_from(record: object) -> Client | None:
    if not isinstance(record, dict):
        return None
    client_id, address, username = record.get("client_id"), record.get("address"), record.get("username")
    protocol, keepalive, connected_at = (
        record.get("protocol"),
        record.get("keepalive"),
        record.get("connected_at"),
    )
    if not (
        isinstance(client_id, str) and client_id and isinstance(address, str) and isinstance(protocol, str)
    ):
        return None
    if username is not None and not isinstance(username, str):
        return None
    if isinstance(keepalive, bool) or not isinstance(keepalive, int):
        return None
    if isinstance(connected_at, bool) or not isinstance(connected_at, int | float):
        return None
    bridge = record.get("bridge") is True
    # A list published before protocols were named ("p4" from a 2.1 broker) reads as today's.
    named = PROTOCOLS.get(protocol[1:], protocol) if re.fullmatch(r"p\d", protocol) else protocol
    return Client(client_id, address, username, _renamed(named), keepalive, float(connected_at), bridge)


def _renamed(protocol: str) -> str:
    return "MQTT 5" if protocol == "MQTT 5.0" else protocol  # the name before mosquitto 2.1 support
