"""GET /api/broker/stats/history: the bridge's recorded stats points, for charts that are full on load.

The bridge keeps every snapshot for 15 minutes and one a minute for 24 hours
(bridge/stats_history.py); a range is answered with the minute points up to where the fine ones
begin, then the fine ones, so the newest part of every chart has the full resolution.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from flask import Blueprint, jsonify, request

from bridge.contract.protocol import Names, loads_object
from dashboard.api import error
from dashboard.broker_context import current_names
from dashboard.extensions import services

stats_api = Blueprint("stats_api", __name__, url_prefix="/api")

RANGES = {"15m": 15 * 60, "1h": 60 * 60, "24h": 24 * 60 * 60}


def _points(client: redis.Redis, key: str, since: float) -> list[dict[str, Any]]:
    found = []
    for raw in client.lrange(key, 0, -1):
        point = loads_object(raw)
        stamp = point.get("timestamp") if point else None
        if (
            point is not None
            and isinstance(stamp, int | float)
            and not isinstance(stamp, bool)
            and stamp >= since
            and isinstance(point.get("data"), dict)
        ):
            found.append({"timestamp": stamp, "data": point["data"]})
    # Oldest first even if the clock was stepped back while the bridge was recording.
    found.sort(key=lambda point: point["timestamp"])
    return found


def stats_history(
    client: redis.Redis, seconds: int, now: float, names: Names | None = None
) -> list[dict[str, Any]]:
    """Points of the last ``seconds``, oldest first, one resolution merged into the other."""
    names = names or Names()
    since = now - seconds
    fine = _points(client, names.KEY_STATS_HISTORY, since)
    starts = fine[0]["timestamp"] if fine else float("inf")
    coarse = [p for p in _points(client, names.KEY_STATS_HISTORY_MINUTE, since) if p["timestamp"] < starts]
    return coarse + fine


@stats_api.get("/broker/stats/history")
def broker_stats_history() -> Any:
    name = request.args.get("range", "15m")
    if name not in RANGES:
        return error(f"range must be one of {', '.join(RANGES)}, got {name!r}", 400)
    seconds = RANGES[name]
    now = time.time()
    points = stats_history(services().redis, seconds, now, current_names())
    return jsonify(range=name, seconds=seconds, now=now, points=points)
