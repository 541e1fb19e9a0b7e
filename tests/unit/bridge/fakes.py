"""A tiny in-memory stand-in for the MQTT side (like httpx's mock transport), for unit tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FakeBroker:
    """Records what the bridge asked of the broker; ``refuse`` makes a filter's SUBACK fail."""

    def __init__(self, connected: bool = True):
        self.connected = connected
        self.published: list[tuple[str, bytes, int, bool]] = []
        self.published_properties: list[dict[str, Any] | None] = []
        self.subscribed: dict[str, int] = {}
        self.refuse: set[str] = set()
        self.swept: list[list[str]] = []  # group leader: filters whose retained messages it fetched

    def is_connected(self) -> bool:
        return self.connected

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        timeout: float,
        properties: Mapping[str, Any] | None = None,
    ) -> str | None:
        if not self.connected:
            return "the broker at localhost:1883 is not connected; nothing was published"
        self.published.append((topic, payload, qos, retain))
        self.published_properties.append(dict(properties) if properties else None)
        return None

    def subscribe(self, topic_filter: str, qos: int, timeout: float = 10.0) -> str | None:
        if topic_filter in self.refuse:
            return "the broker refused the subscribe: Not authorized"
        self.subscribed[topic_filter] = qos
        return None

    def unsubscribe(self, topic_filter: str, timeout: float = 10.0) -> str | None:
        self.subscribed.pop(topic_filter, None)
        return None

    def sweep_retained(self, filters: list[str] | None = None) -> str | None:
        self.swept.append(list(filters or []))
        return None
