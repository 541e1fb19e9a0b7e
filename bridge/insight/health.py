"""The heartbeat the bridge keeps in Redis, and the ``healthcheck`` command that reads it."""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from bridge import __version__
from bridge.contract import protocol


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


def check_member(
    client: redis.Redis, member: str, now: float | None = None, names: protocol.Names | None = None
) -> tuple[bool, str]:
    """A bridge group's member: healthy means its own heartbeat is fresh and it is connected.
    (The group's leader may be another member; this checks the one the container runs.)"""
    now = time.time() if now is None else now
    names = names or protocol.Names()
    try:
        heartbeat = protocol.loads_object(client.get(names.KEY_MEMBER_HEARTBEAT_PREFIX + member))
        leader = protocol.loads_object(client.get(names.KEY_LEADER))
    except redis.RedisError as exc:
        return False, f"unhealthy: Redis is unreachable ({type(exc).__name__})"
    if heartbeat is None:
        return False, f"unhealthy: no heartbeat from bridge member {member!r} (it is not running)"
    stamp = heartbeat.get("timestamp")
    age = now - stamp if isinstance(stamp, int | float) else float("inf")
    if age > protocol.HEARTBEAT_TTL:
        return False, f"unhealthy: member {member!r}'s heartbeat is {age:.0f} s old"
    if heartbeat.get("connected") is not True:
        return False, f"unhealthy: member {member!r} is not connected to the broker"
    leads = (leader or {}).get("member")
    role = "the leader" if leads == member else f"following {leads}" if leads else "no leader yet"
    return True, f"healthy: member {member!r} (pid {heartbeat.get('pid')}, {role}), heartbeat {age:.1f} s old"
