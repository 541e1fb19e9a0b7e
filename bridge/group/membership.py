"""The bridge group's shared picture: every member's record in ``mqtt:bridge:members``, its own
heartbeat key, its share of the topic index; and what the leader makes of them (dead members
marked with their loss estimate, pruned later; one topic index and one set of counters).

Redis 7.0 has no per-field expiry, so liveness is each member's own heartbeat key (with a TTL)
and the leader prunes the hash. Every member writes here, and so can anyone with redis-cli: each
value read is checked (bridge/contract/redis_values.py), and a bad one is replaced, never used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import redis

from bridge.contract import protocol
from bridge.contract.redis_values import REJECTED, count, unix_time

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
            counters = record.get("counters")
            held = count(counters.get("queue_depth")) if isinstance(counters, dict) else None
            held = held or 0
            record.update(alive=False, leader=False, died_at=now, estimated_lost=held)
            client.hset(names.KEY_MEMBERS, member, protocol.dumps(record))
            logger.warning(
                "bridge member %s stopped (no heartbeat); it held about %s queued messages", member, held
            )
            found_dead.append(member)
            continue
        died_at = unix_time(record.get("died_at"))
        if died_at is None:
            # Replaced by now: the member is forgotten MEMBER_FORGET_AFTER from here.
            REJECTED.report(f"{names.KEY_MEMBERS} {member} died_at", "not a time in Unix seconds")
            client.hset(names.KEY_MEMBERS, member, protocol.dumps({**record, "died_at": now}))
        elif now - died_at > protocol.MEMBER_FORGET_AFTER:
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
            value = count(value)
            if value is not None and not (name == "queue_depth" and not record.get("alive", True)):
                total[name] = min(total.get(name, 0) + value, _MAX_TOTAL)
    return total


_MAX_TOTAL = 2**53 - 1  # a sum stays within what a browser reads exactly


def merged_topics(client: redis.Redis, limit: int, names: protocol.Names) -> list[dict[str, Any]]:
    """Leader only: every member's share of the topic index as one index (most recent first)."""
    merged: dict[str, dict[str, Any]] = {}
    for key, raw in client.hgetall(names.KEY_MEMBER_TOPICS).items():
        where = f"{names.KEY_MEMBER_TOPICS} {_text(key)}"
        try:
            rows = json.loads(raw)
        except (ValueError, RecursionError):
            rows = None
        if not isinstance(rows, list):
            REJECTED.report(where, "not a JSON list of topics")
            continue
        for found in rows:
            row = _topic_row(found, where)
            if row is None:
                continue
            seen = merged.get(row["topic"])
            if seen is None:
                merged[row["topic"]] = row
                continue
            messages = min(seen["messages"] + row["messages"], _MAX_TOTAL)
            if (row["last_seen"] or 0.0) > (seen["last_seen"] or 0.0):
                seen.update(row)
            seen["messages"] = messages
    rows = sorted(merged.values(), key=lambda r: r["last_seen"] or 0.0, reverse=True)
    return rows[:limit]


def _topic_row(row: Any, where: str) -> dict[str, Any] | None:
    """One member's topic-index row with its numbers checked: a bad count or time is reported
    and replaced (0, or no time), so one damaged row cannot stop the leader's merge."""
    if not isinstance(row, dict) or not isinstance(row.get("topic"), str):
        REJECTED.report(where, "a topic row that is not an object with a topic name")
        return None
    checked = dict(row)
    messages = count(row.get("messages"))
    if messages is None:
        REJECTED.report(where + " messages", "not a message count")
    checked["messages"] = messages or 0
    last_seen = row.get("last_seen")
    checked["last_seen"] = unix_time(last_seen)
    if last_seen is not None and checked["last_seen"] is None:
        REJECTED.report(where + " last_seen", "not a time in Unix seconds")
    return checked
