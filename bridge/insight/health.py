"""The heartbeat the bridge keeps in Redis, and the ``healthcheck`` command that reads it.

A heartbeat's age is measured by Redis (bridge/contract/heartbeats.py), so a healthcheck run on
another host than the bridge, or a group's leader whose clock is off, is judged fairly.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from bridge import __version__
from bridge.contract import protocol
from bridge.contract.heartbeats import Heartbeat, read_heartbeat
from bridge.contract.redis_values import REJECTED, short_text


def heartbeat_body(
    started_at: float,
    counters: dict[str, int],
    broker: str,
    connected: bool,
    topics: list[str],
    now: float | None = None,
) -> dict[str, Any]:
    return {
        "timestamp": time.time() if now is None else now,
        "pid": os.getpid(),
        "version": __version__,
        "started_at": started_at,
        "broker": broker,
        "connected": connected,
        "topics": topics,
        # the values found damaged in Redis (and replaced) by this process, as a counter
        "counters": {**counters, "redis_values_rejected": REJECTED.count},
    }


def _stale(heartbeat: Heartbeat) -> str | None:
    """Why a present heartbeat does not vouch for its bridge, or None."""
    if heartbeat.problem is not None:
        return heartbeat.problem
    if heartbeat.age is None:
        return "its age cannot be told (no TTL and no usable timestamp)"
    if heartbeat.age > protocol.HEARTBEAT_TTL:
        return f"it is {heartbeat.age:.0f} s old (stale after {protocol.HEARTBEAT_TTL} s)"
    return None


def check(client: redis.Redis, names: protocol.Names) -> tuple[bool, str]:
    """(healthy, one explanatory line): healthy means a fresh heartbeat and a connected broker."""
    try:
        heartbeat = read_heartbeat(client, names.KEY_HEARTBEAT)
        status = protocol.loads_object(client.get(names.KEY_STATUS_LATEST))
    except redis.RedisError as exc:
        return False, f"unhealthy: Redis is unreachable ({type(exc).__name__})"
    if not heartbeat.present:
        return False, "unhealthy: no bridge heartbeat in Redis (the bridge is not running)"
    stale = _stale(heartbeat)
    if stale:
        return False, f"unhealthy: the bridge's heartbeat does not vouch for it: {stale}"
    if status is None or status.get("connected") is not True:
        reason = (status or {}).get("reason") or "no status yet"
        return False, f"unhealthy: the bridge is not connected to the broker ({reason})"
    assert heartbeat.body is not None and heartbeat.age is not None
    return (
        True,
        f"healthy: bridge pid {heartbeat.body.get('pid')} connected to {status.get('broker')}, "
        f"heartbeat {heartbeat.age:.1f} s old",
    )


def check_member(client: redis.Redis, member: str, names: protocol.Names) -> tuple[bool, str]:
    """A bridge group's member: healthy means its own heartbeat is fresh and it is connected.
    (The group's leader may be another member; this checks the one the container runs.)"""
    try:
        heartbeat = read_heartbeat(client, names.KEY_MEMBER_HEARTBEAT_PREFIX + member)
        leader = protocol.loads_object(client.get(names.KEY_LEADER))
    except redis.RedisError as exc:
        return False, f"unhealthy: Redis is unreachable ({type(exc).__name__})"
    if not heartbeat.present:
        return False, f"unhealthy: no heartbeat from bridge member {member!r} (it is not running)"
    stale = _stale(heartbeat)
    if stale:
        return False, f"unhealthy: member {member!r}'s heartbeat does not vouch for it: {stale}"
    assert heartbeat.body is not None and heartbeat.age is not None
    if heartbeat.body.get("connected") is not True:
        return False, f"unhealthy: member {member!r} is not connected to the broker"
    leads = short_text((leader or {}).get("member"))
    role = "the leader" if leads == member else f"following {leads}" if leads else "no leader yet"
    return (
        True,
        f"healthy: member {member!r} (pid {heartbeat.body.get('pid')}, {role}), "
        f"heartbeat {heartbeat.age:.1f} s old",
    )
