"""The heartbeat the bridge keeps in Redis, and the ``healthcheck`` command that reads it."""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from bridge import __version__, protocol


def heartbeat_body(
    started_at: float, counters: dict[str, int], broker: str, connected: bool, topics: list[str]
) -> dict[str, Any]:
    return {
        "timestamp": time.time(),
        "pid": os.getpid(),
        "version": __version__,
        "started_at": started_at,
        "broker": broker,
        "connected": connected,
        "topics": topics,
        "counters": counters,
    }


def check(
    client: redis.Redis, now: float | None = None, names: protocol.Names | None = None
) -> tuple[bool, str]:
    """(healthy, one explanatory line): healthy means a fresh heartbeat and a connected broker."""
    now = time.time() if now is None else now
    names = names or protocol.Names()
    try:
        heartbeat = protocol.loads_object(client.get(names.KEY_HEARTBEAT))
        status = protocol.loads_object(client.get(names.KEY_STATUS_LATEST))
    except redis.RedisError as exc:
        return False, f"unhealthy: Redis is unreachable ({type(exc).__name__})"
    if heartbeat is None:
        return False, "unhealthy: no bridge heartbeat in Redis (the bridge is not running)"
    stamp = heartbeat.get("timestamp")
    age = now - stamp if isinstance(stamp, int | float) else float("inf")
    if age > protocol.HEARTBEAT_TTL:
        return (
            False,
            f"unhealthy: the bridge's heartbeat is {age:.0f} s old (stale after {protocol.HEARTBEAT_TTL} s)",
        )
    if status is None or status.get("connected") is not True:
        reason = (status or {}).get("reason") or "no status yet"
        return False, f"unhealthy: the bridge is not connected to the broker ({reason})"
    return (
        True,
        f"healthy: bridge pid {heartbeat.get('pid')} connected to {status.get('broker')}, "
        f"heartbeat {age:.1f} s old",
    )
