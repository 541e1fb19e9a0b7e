"""The live client list, rebuilt from mosquitto's log lines on ``$SYS/broker/log/#``.

Mosquitto 2.0 has no client list of its own; with ``log_dest topic`` it publishes lines such as
``1700000000: New client connected from 10.0.0.5:52144 as sensor-1 (p2, c1, k60, u'alice').``
Clients connected before the bridge first started appear only when they reconnect; a restarted
bridge takes up the list it last published (``restore``), unless the broker restarted meanwhile.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

LOG_PREFIX = "$SYS/broker/log/"
MAX_CLIENTS = 100_000  # a guard against a flood of fake ids, far above any real broker here

_TIMESTAMP = re.compile(r"^\d+: ")
_CONNECTED = re.compile(
    r"^New client connected from (?P<address>\S+) as (?P<id>.+) "
    r"\(p(?P<protocol>\d+), c(?P<clean>\d), k(?P<keepalive>\d+)(?:, u'(?P<username>.*)')?\)\.?$"
)
_CLIENT_LINE = re.compile(r"^Client (?P<rest>.+)$")
_SOCKET_ERROR = re.compile(r"^Socket error on client (?P<id>.+), disconnecting\.$")
# What follows the client id (and an optional " [address]") when mosquitto says a client left.
_GONE_TAIL = re.compile(
    r"^(?:\[[^\]]*\] )?(?:disconnected(?:\.|, not authorised\.| due to [^.]*\.)"
    r"|closed its connection\.|has exceeded timeout, disconnecting\.|been disconnected.*"
    r"|already connected, closing old connection\.)$"
)
# mosquitto logs its own protocol numbers: p1 = 3.1, p2 = 3.1.1, p5 = 5.0
PROTOCOLS = {"1": "MQTT 3.1", "2": "MQTT 3.1.1", "5": "MQTT 5.0"}


@dataclass(frozen=True)
class Client:
    client_id: str
    address: str
    username: str | None
    protocol: str
    keepalive: int
    connected_at: float


class ClientTracker:
    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
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
            )
            self.changed = True
            return True
        client_id = self._gone(line)
        if client_id is not None:
            del self._clients[client_id]
            self.changed = True
            return True
        return False

    def _gone(self, line: str) -> str | None:
        """The tracked client a "gone" line is about, if any.

        A client id may contain spaces and our own keywords: ``Client victim disconnected
        disconnected.`` is about ``victim disconnected``, not ``victim``. So every split of the
        line into id + known ending is tried, and the longest id we track wins.
        """
        socket_error = _SOCKET_ERROR.match(line)
        if socket_error:
            return socket_error["id"] if socket_error["id"] in self._clients else None
        client = _CLIENT_LINE.match(line)
        if not client:
            return None
        rest = client["rest"]
        candidates = [
            rest[:i] for i, char in enumerate(rest) if char == " " and _GONE_TAIL.match(rest[i + 1 :])
        ]
        tracked = [c for c in candidates if c in self._clients]
        return max(tracked, key=len) if tracked else None

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
                self.changed = True
        return len(self._clients)

    def clear(self) -> None:
        """The broker restarted: every client it had is gone."""
        if self._clients:
            self._clients.clear()
            self.changed = True

    def __len__(self) -> int:
        return len(self._clients)

    def snapshot(self) -> list[dict[str, Any]]:
        return [asdict(c) for c in sorted(self._clients.values(), key=lambda c: c.client_id)]


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
    return Client(client_id, address, username, protocol, keepalive, float(connected_at))
