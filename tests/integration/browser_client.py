"""A python-socketio client that behaves like a dashboard browser tab, for integration tests."""

from __future__ import annotations

import threading
from typing import Any

import socketio

from tests.helpers import wait_for


class Browser:
    """A python-socketio client on the WebSocket transport that records what it receives."""

    def __init__(self, url: str, auth: dict[str, str] | None = None):
        self.sio = socketio.Client(reconnection=False)
        self.lock = threading.Lock()
        self.snapshot: dict[str, Any] | None = None
        self.topics: list[str] = []
        self.skipped = 0
        self.sio.on("snapshot", self._on_snapshot)
        self.sio.on("mqtt_messages", self._on_frame)
        self.events: list[tuple[str, Any]] = []  # broker_status and bridge_health, in order
        for name in ("broker_status", "bridge_health"):
            self.sio.on(name, lambda data, name=name: self._on_event(name, data))
        self.url, self.auth = url, auth

    def connect(self) -> Browser:
        self.sio.connect(self.url, transports=["websocket"], auth=self.auth, wait_timeout=10)
        wait_for(lambda: self.snapshot is not None, 10, what="the snapshot")
        return self

    def _on_snapshot(self, data: dict[str, Any]) -> None:
        self.snapshot = data

    def _on_event(self, name: str, data: Any) -> None:
        with self.lock:
            self.events.append((name, data))

    def events_named(self, name: str) -> list[Any]:
        with self.lock:
            return [data for event, data in self.events if event == name]

    def _on_frame(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.topics.extend(m["topic"] for m in data["messages"])
            self.skipped += data["skipped"]

    @property
    def worker(self) -> int:
        assert self.snapshot is not None
        return int(self.snapshot["worker"])

    def received(self) -> list[str]:
        with self.lock:
            return list(self.topics)

    def close(self) -> None:
        self.sio.disconnect()
