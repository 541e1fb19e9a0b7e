"""Which client-list entries the broker itself confirms: the live connections that mosquitto 2.1's
dynamic-security plugin reports for its accounts (``listClients`` with ``verbose``).

Log lines carry client ids that clients choose; the plugin's answer comes from the broker's own
table of connections. It names, per account, the address (without port) of each connection that
logged in with it, so an entry is confirmed when its user name has a live connection from its
address. The plugin of mosquitto 2.0 reports no connections at all: there the broker cannot say.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol


class Entry(Protocol):
    @property
    def client_id(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def username(self) -> str | None: ...
    @property
    def connected_at(self) -> float: ...


@dataclass(frozen=True)
class LiveConnections:
    """The plugin's answer: account -> addresses of its live connections, as asked at ``asked_at``."""

    accounts: dict[str, tuple[str, ...]]
    asked_at: float

    def confirm(self, entries: list[Entry]) -> dict[str, bool | None]:
        """client id -> True (a live connection of its user from its address), False (the plugin
        knows its user and reports no such connection), None (the plugin cannot say: no user,
        a user it does not know, or an entry newer than the question)."""
        left = {user: Counter(addresses) for user, addresses in self.accounts.items()}
        verdicts: dict[str, bool | None] = {}
        for entry in sorted(entries, key=lambda e: e.connected_at):  # the oldest claim a connection first
            pool = left.get(entry.username) if entry.username is not None else None
            if pool is None or entry.connected_at > self.asked_at:
                verdicts[entry.client_id] = None
                continue
            host = host_of(entry.address)
            verdicts[entry.client_id] = pool[host] > 0
            pool[host] -= 1
        return verdicts


def host_of(address: str) -> str:
    """``10.0.0.5:52144`` -> ``10.0.0.5``; ``::1:41000`` -> ``::1`` (mosquitto writes IPv6 unbracketed)."""
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def from_list_clients(response: dict[str, Any], asked_at: float) -> LiveConnections | str:
    """The plugin's ``listClients`` (verbose) response, or a sentence saying why it tells nothing."""
    if response.get("error"):
        return f"the broker refused listClients: {response['error']}"
    data = response.get("data")
    clients = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(clients, list):
        return "the broker's listClients answer has no client list"
    accounts: dict[str, tuple[str, ...]] = {}
    for client in clients:
        if not isinstance(client, dict) or not isinstance(client.get("username"), str):
            continue
        connections = client.get("connections")
        if not isinstance(connections, list):
            return "this broker's dynamic-security plugin does not report connections (mosquitto 2.1 does)"
        accounts[client["username"]] = tuple(
            c["address"] for c in connections if isinstance(c, dict) and isinstance(c.get("address"), str)
        )
    return LiveConnections(accounts, asked_at)
