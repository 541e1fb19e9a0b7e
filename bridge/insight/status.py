"""The broker connection's state as the contract tells it: ``status_change`` messages."""

from __future__ import annotations

import time
from typing import Any

from bridge.contract import protocol
from bridge.ingest.mqtt_source import LinkEvent


class BrokerStatus:
    def __init__(self, broker: str, now: float | None = None):
        self.broker = broker  # host:port only, never credentials
        self.connected = False
        self.reason: str | None = "the bridge is starting"
        self.since = time.time() if now is None else now
        self.last_connected_at: float | None = None
        self.last_disconnected_at: float | None = None

    def apply(self, event: LinkEvent, now: float | None = None) -> bool:
        """Fold in a link event; True when the status changed (and should be announced)."""
        if event.connected == self.connected and event.reason == self.reason:
            return False
        now = time.time() if now is None else now
        if event.connected != self.connected:
            self.since = now
            if event.connected:
                self.last_connected_at = now
            else:
                self.last_disconnected_at = now
        self.connected, self.reason = event.connected, event.reason
        return True

    def message(self) -> dict[str, Any]:
        return protocol.envelope(
            protocol.TYPE_STATUS,
            connected=self.connected,
            broker=self.broker,
            reason=self.reason,
            since=self.since,
            last_connected_at=self.last_connected_at,
            last_disconnected_at=self.last_disconnected_at,
        )
