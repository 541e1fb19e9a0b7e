"""The sockets of tenant users on this worker, by broker and tenant, and their cut of every event.

A tenant user's socket never joins its broker's room (which gets the broker-wide status, stats,
clients and topics); it joins its tenant's room, and the relay sends that room each event as
dashboard/tenant_view.py cuts it. Its ``mqtt_messages`` frames need nothing special: its filter is
always inside the tenant's topics (dashboard/events.py), so its frames are too.
"""

from __future__ import annotations

from typing import Any

from flask_socketio import SocketIO

from bridge.contract.protocol import names_for
from dashboard.policy import TopicScope
from dashboard.store import Store
from dashboard.tenant_accounts import TenantAccounts
from dashboard.tenant_view import scoped_event


def tenant_room(broker: str, tenant: str) -> str:
    return f"broker:{broker}:tenant:{tenant}"


class TenantRooms:
    def __init__(self, socketio: SocketIO, accounts: TenantAccounts, prefix: str):
        self.socketio = socketio
        self.accounts = accounts
        self.prefix = prefix
        self._where: dict[str, tuple[str, str]] = {}  # sid -> (broker, tenant)

    def add(self, sid: str, broker: str, tenant: str) -> str:
        """Remember a tenant user's socket; returns the room it joins."""
        self._where[sid] = (broker, tenant)
        return tenant_room(broker, tenant)

    def remove(self, sid: str) -> None:
        self._where.pop(sid, None)

    def tenants(self, broker: str) -> set[str]:
        return {tenant for b, tenant in self._where.values() if b == broker}

    def emit(self, event: str, message: dict[str, Any], broker: str) -> None:
        """Send each tenant watching ``broker`` here its cut of ``message`` (if any)."""
        for tenant in self.tenants(broker):
            accounts = None
            if event == "clients_update":
                accounts = self.accounts.accounts(
                    broker, tenant, wait=False, then=lambda: self.resend_clients(broker)
                )
            scoped = scoped_event(event, message, TopicScope(self.prefix, tenant), accounts)
            if scoped is not None:
                self.socketio.emit(event, scoped, to=tenant_room(broker, tenant))

    def resend_clients(self, broker: str) -> None:
        """Once the accounts are known: the latest client list again, now cut right."""
        latest = Store(self.accounts.redis, names_for(broker)).latest("clients")
        if latest is not None:
            self.emit("clients_update", latest, broker)
