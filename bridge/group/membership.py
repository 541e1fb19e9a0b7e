"""The bridge group's shared picture: every member's record in ``mqtt:bridge:members``, its own
heartbeat key, its share of the topic index; and what the leader makes of them (dead members
marked with their loss estimate, pruned later; one topic index and one set of counters).

Redis 7.0 has no per-field expiry, so liveness is each member's own heartbeat key (with a TTL)
and the leader prunes the hash.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import redis

from bridge.contract import protocol

logger = logging.getLogger(__name__)

COUNTER_NAMES = (
    "received",
    "forwarded",
    "dropped",
    "queue_depth",
    "reconnects",
    "commands_ok",
    "commands_failed",
)

# Every function takes the bridge's names, with no default: one that forgot them would read and
# write another broker's (the unnamed bridge's) keys, as the session adopter once did.


def member_heartbeat_key(member: str, names: protocol.Names) -> str:
    return names.KEY_MEMBER_HEARTBEAT_PREFIX + member


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def read_members(client: redis.Redis, names: protocol.Names) -> dict[str, dict[str, Any]]:
    members = {}
    for key, value in client.hgetall(names.KEY_MEMBERS).items():
        record = protocol.loads_object(value)
        if record is not None:
            members[_text(key)] = record
    return members


def write_member(
    client: redis.Redis,
    member: str,
    record: Mapping[str, Any],
    topics: list[Any] | None,
    names: protocol.Names,
) -> None:
    """This member's heartbeat and record (and, when given, its share of the topic index)."""
    text = protocol.dumps(record)
    pipe = client.pipeline(transaction=False)
    pipe.set(member_heartbeat_key(member, names), text, ex=protocol.HEARTBEAT_TTL)
    pipe.hset(names.KEY_MEMBERS, member, text)
    if topics is not None:
        pipe.hset(names.KEY_MEMBER_TOPICS, member, protocol.dumps(topics))
    pipe.execute()


def forget_member(client: redis.Redis, member: str, names: protocol.Names) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.delete(member_heartbeat_key(member, names))
    pipe.hdel(names.KEY_MEMBERS, member)
    pipe.hdel(names.KEY_MEMBER_TOPICS, member)
    pipe.execute()


def prune(client: redis.Redis, now: float, names: protocol.Names) -> list[str]:
    """Leader only. A member whose heartbeat key is gone is marked dead, once, with an estimate
    of what it lost: the QoS 0 messages it held in its queue at its last heartbeat (QoS 1/2
    ones stay the broker's for its session). Dead for MEMBER_FORGET_AFTER: removed.
    ``now`` is Redis's clock. Returns the members newly found dead."""
    found_dead = []
    for member, record in read_members(client, names).items():
        if client.exists(member_heartbeat_key(member, names)):
            continue
        if record.get("alive", True):
            counters = record.get("counters") if isinstance(record.get("counters"), dict) else {}
            held = counters.get("queue_depth", 0) if isinstance(counters, dict) else 0
            record.update(alive=False, leader=False, died_at=now, estimated_lost=held)
            client.hset(names.KEY_MEMBERS, member, protocol.dumps(record))
            logger.warning(
                "bridge member %s stopped (no heartbeat); it held about %s queued messages", member, held
            )
            found_dead.append(member)
        elif now - float(record.get("died_at") or now) > protocol.MEMBER_FORGET_AFTER:
            client.hdel(names.KEY_MEMBERS, member)
            client.hdel(names.KEY_MEMBER_TOPICS, member)
    return found_dead


def group_counters(members: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """The counters of every member listed, summed; a dead one's queue no longer counts."""
    total = dict.fromkeys(COUNTER_NAMES, 0)
    for record in members.values():
        counters = record.get("counters")
        if not isinstance(counters, dict):
            continue
        for name, value in counters.items():
            if isinstance(value, int) and not (name == "queue_depth" and not record.get("alive", True)):
                total[name] = total.get(name, 0) + value
    return total


def merged_topics(client: redis.Redis, limit: int, names: protocol.Names) -> list[dict[str, Any]]:
    """Leader only: every member's share of the topic index as one index (most recent first)."""
    merged: dict[str, dict[str, Any]] = {}
    for raw in client.hvals(names.KEY_MEMBER_TOPICS):
        try:
            rows = json.loads(raw)
        except ValueError:
            continue
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or not isinstance(row.get("topic"), str):
                continue
            seen = merged.get(row["topic"])
            if seen is None:
                merged[row["topic"]] = dict(row)
                continue
            messages = int(seen.get("messages") or 0) + int(row.get("messages") or 0)
            if float(row.get("last_seen") or 0) > float(seen.get("last_seen") or 0):
                seen.update(row)
            seen["messages"] = messages
    rows = sorted(merged.values(), key=lambda r: float(r.get("last_seen") or 0), reverse=True)
    return rows[:limit]
