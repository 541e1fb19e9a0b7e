"""Mosquitto's ``$SYS/broker/...`` topics, parsed once into one typed, carried-forward snapshot.

Mosquitto publishes a ``$SYS`` value only when it changes, so the snapshot keeps the last value
of each. Per-second rates are derived here from successive counter observations, so no reader
needs to do arithmetic. So is ``publish_dropped_recent``, what the broker dropped in the last
LOSS_WINDOW seconds: loss at the broker (a subscriber's queue full, perhaps the bridge's) is
invisible to the bridge's own counters, and this is how the dashboard and /health learn of it.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from typing import Any

from bridge.contract.server_versions import mosquitto_shortfall

logger = logging.getLogger(__name__)

PREFIX = "$SYS/broker/"

# topic under $SYS/broker/ -> field name in the snapshot's ``data``
_COUNTERS = {
    "uptime": "uptime_seconds",
    "clients/connected": "clients_connected",
    "clients/active": "clients_connected",  # mosquitto < 1.6 name
    "clients/disconnected": "clients_disconnected",
    "clients/inactive": "clients_disconnected",
    "clients/total": "clients_total",
    "clients/maximum": "clients_maximum",
    "clients/expired": "clients_expired",
    "messages/received": "messages_received",
    "messages/sent": "messages_sent",
    "messages/stored": "messages_stored",
    "store/messages/count": "store_messages",
    "store/messages/bytes": "store_bytes",
    "publish/messages/received": "publish_received",
    "publish/messages/sent": "publish_sent",
    "publish/messages/dropped": "publish_dropped",
    "publish/bytes/received": "publish_bytes_received",
    "publish/bytes/sent": "publish_bytes_sent",
    "bytes/received": "bytes_received",
    "bytes/sent": "bytes_sent",
    "subscriptions/count": "subscriptions",
    "retained messages/count": "retained_messages",
    "shared_subscriptions/count": "shared_subscriptions",
    "heap/current": "heap_current",
    "heap/current size": "heap_current",
    "heap/maximum": "heap_maximum",
    "heap/maximum size": "heap_maximum",
}
# Counters whose per-second rate the dashboard shows.
RATE_FIELDS = ("messages_received", "messages_sent", "bytes_received", "bytes_sent", "publish_dropped")
LOSS_WINDOW = 60.0  # seconds over which publish_dropped_recent counts the broker's drops
_LOAD = re.compile(r"^load/([a-z_]+(?:/[a-z_]+)?)/(1min|5min|15min)$")
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")


def parse_number(text: str) -> int | float | None:
    """'123 seconds' -> 123, '0.55' -> 0.55, 'n/a' -> None."""
    match = _NUMBER.match(text)
    if not match:
        return None
    value = match.group(1)
    return float(value) if "." in value else int(value)


class _Rate:
    """Per-second rate from successive (value, time) observations of a counter."""

    __slots__ = ("last_time", "last_value", "rate")

    def __init__(self) -> None:
        self.last_value: float | None = None
        self.last_time = 0.0
        self.rate: float | None = None

    def observe(self, value: float, now: float) -> None:
        if self.last_value is not None and now > self.last_time:
            delta = value - self.last_value
            # A smaller value means the broker restarted: start over rather than go negative.
            self.rate = delta / (now - self.last_time) if delta >= 0 else None
        self.last_value, self.last_time = value, now


class SysStats:
    def __init__(self, stale_after: float = 12.0):
        self.data: dict[str, Any] = {}
        self.load: dict[str, dict[str, float]] = {}
        self._rates = {name: _Rate() for name in RATE_FIELDS}
        # Mosquitto sends nothing for an unchanged counter: after this long, its rate is 0.
        self.stale_after = stale_after
        self.updated = False
        # (time, publish_dropped) seen within LOSS_WINDOW, plus the last one before it (the base)
        self._drops: deque[tuple[float, float]] = deque()

    def update(self, topic: str, payload: bytes, now: float | None = None) -> bool:
        """Fold one $SYS message in; True when it was a stat we know."""
        if not topic.startswith(PREFIX):
            return False
        now = time.time() if now is None else now
        name = topic[len(PREFIX) :]
        text = payload.decode("utf-8", "replace")
        if name == "version":
            version = text.replace("mosquitto version ", "").strip()[:64]
            shortfall = mosquitto_shortfall(text)
            if shortfall and self.data.get("version") != version:
                logger.warning("%s", shortfall)
            self.data["version"] = version
            return True
        load = _LOAD.match(name)
        if load:
            value = parse_number(text)
            if value is None or value < 0:
                return False
            self.load.setdefault(load.group(1).replace("/", "_"), {})[load.group(2)] = float(value)
            return True
        field = _COUNTERS.get(name)
        if field is None:
            return False
        value = parse_number(text)
        if value is None or value < 0:
            # Mosquitto has been seen reporting a negative clients/disconnected: ignore it.
            logger.debug("ignoring impossible value %r for %s", text, topic)
            return False
        self.data[field] = value
        rate = self._rates.get(field)
        if rate is not None:
            rate.observe(value, now)
        if field == "publish_dropped":
            self._observe_drops(value, now)
        self.updated = True
        return True

    def _observe_drops(self, value: float, now: float) -> None:
        if self._drops and value < self._drops[-1][1]:
            self._drops.clear()  # the broker restarted: its counter began again at 0
        self._drops.append((now, value))

    def dropped_recently(self, now: float) -> int | None:
        """How much ``publish_dropped`` rose over the last LOSS_WINDOW seconds (None before the
        first observation). Mosquitto publishes the counter only when it changes, so the value
        at the window's start is the last one seen before it."""
        while len(self._drops) > 1 and self._drops[1][0] <= now - LOSS_WINDOW:
            self._drops.popleft()
        if not self._drops:
            return None
        base_time, base = self._drops[0]
        if base_time > now - LOSS_WINDOW and len(self._drops) == 1:
            return 0  # one observation: nothing seen to rise yet
        return int(self._drops[-1][1] - base)

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The ``data`` of a stats_update: numbers, with ``load`` and ``rates`` nested."""
        now = time.time() if now is None else now
        rates: dict[str, float | None] = {}
        for name, rate in self._rates.items():
            if rate.rate is None:  # fewer than two observations yet, or the broker restarted
                value = None
            elif now - rate.last_time > self.stale_after:
                value = 0.0
            else:
                value = round(rate.rate, 3)
            rates[f"{name}_per_s"] = value
        recent = self.dropped_recently(now)
        extra = {} if recent is None else {"publish_dropped_recent": recent}
        return {**self.data, **extra, "load": {k: dict(v) for k, v in self.load.items()}, "rates": rates}
