"""The bounded stats history in Redis: what lets the dashboard draw its charts full on load.

Two lists of compact points (oldest first): every snapshot for the last 15 minutes, and the first
snapshot of each minute for the last 24 hours. Each is trimmed on every write, so the history stays
under a megabyte at the default interval (about 2 MB at most) whatever the bridge's uptime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import redis

from bridge.contract import protocol

# The fields the charts and their tooltips use; the rest of a snapshot stays in :latest only.
POINT_FIELDS = (
    "clients_connected",
    "messages_received",
    "messages_sent",
    "bytes_received",
    "bytes_sent",
    "publish_dropped",
    "subscriptions",
    "retained_messages",
)


def fine_points(stats_interval: float) -> int:
    """How many snapshots make up the fine tier at this interval (bounded for tiny intervals)."""
    wanted = math.ceil(protocol.STATS_HISTORY_FINE_SECONDS / stats_interval) + 1
    return max(2, min(wanted, protocol.STATS_HISTORY_MAX_FINE_POINTS))


def compact_point(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``stats_update`` reduced to ``{timestamp, data}`` with the charted fields; None if unusable."""
    data = message.get("data")
    stamp = message.get("timestamp")
    if not isinstance(data, Mapping) or not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return None
    kept: dict[str, Any] = {name: data[name] for name in POINT_FIELDS if name in data}
    rates = data.get("rates")
    if isinstance(rates, Mapping):
        kept["rates"] = dict(rates)
    return {"timestamp": stamp, "data": kept}


class StatsHistory:
    """Appends each announced stats snapshot; called by the housekeeping thread only."""

    def __init__(self, client: redis.Redis, stats_interval: float, names: protocol.Names | None = None):
        self.client = client
        self.names = names or protocol.Names()
        self.fine_points = fine_points(stats_interval)
        self._last_minute: int | None = None

    def record(self, message: Mapping[str, Any]) -> None:
        point = compact_point(message)
        if point is None:
            return
        minute = int(point["timestamp"] // 60)
        if self._last_minute is None:
            # After a restart, do not add a second point to the minute the last run recorded.
            self._last_minute = self._recorded_minute()
        text = protocol.dumps(point)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(self.names.KEY_STATS_HISTORY, text)
        pipe.ltrim(self.names.KEY_STATS_HISTORY, -self.fine_points, -1)
        if self._last_minute is None or minute > self._last_minute:
            pipe.rpush(self.names.KEY_STATS_HISTORY_MINUTE, text)
            pipe.ltrim(self.names.KEY_STATS_HISTORY_MINUTE, -protocol.STATS_HISTORY_MINUTES, -1)
        pipe.execute()
        if self._last_minute is None or minute > self._last_minute:
            self._last_minute = minute

    def _recorded_minute(self) -> int | None:
        last = protocol.loads_object(self.client.lindex(self.names.KEY_STATS_HISTORY_MINUTE, -1))
        stamp = last.get("timestamp") if last else None
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            return int(stamp // 60)
        return None
