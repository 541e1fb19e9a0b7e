"""Reads of the bridge's Redis data: latest snapshots, heartbeat, history, subscriptions.

Shared by the REST API, the Socket.IO snapshot and the relay, so all three read the contract
the same way. Every name comes from ``bridge.contract.protocol``. What a bridge wrote is checked
before it is shown (bridge/contract/redis_values.py): a damaged heartbeat or state key makes
that one broker "unreadable", with the reason, and never an error page for every broker.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import redis

from bridge.contract.heartbeats import read_heartbeat
from bridge.contract.protocol import (
    HEARTBEAT_TTL,
    HISTORY_FIELD,
    KEY_CLIENTS_LATEST,
    KEY_STATS_LATEST,
    KEY_STATUS_LATEST,
    KEY_TOPICS_LATEST,
    Names,
    loads_object,
    parse_subscription_record,
    per_broker_name,
    topic_matches,
)
from bridge.contract.redis_values import REJECTED, count, short_text, unix_time

logger = logging.getLogger(__name__)

# What each REST route and snapshot field is called, and where it is kept.
LATEST = {
    "status": KEY_STATUS_LATEST,
    "stats": KEY_STATS_LATEST,
    "clients": KEY_CLIENTS_LATEST,
    "topics": KEY_TOPICS_LATEST,
}
STREAM_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
_CHUNK = 500
# A filtered page stops scanning here even if it found fewer than ``limit`` matches, so one
# request cannot walk a huge stream; ``next_before`` lets the client carry on.
SCAN_LIMIT = 50_000


# The counters the dashboard shows of each bridge-group member (its record has more).
MEMBER_COUNTERS = ("received", "forwarded", "dropped", "queue_depth")


def group_members(raw: dict[Any, Any]) -> list[dict[str, Any]]:
    """``mqtt:bridge:members`` as a list for the overview: the leader first, then by id."""
    members = []
    for value in raw.values():
        record = loads_object(value)
        if record is None or short_text(record.get("member")) is None:
            continue
        found = record.get("counters")
        counters: dict[str, Any] = found if isinstance(found, dict) else {}
        shown = {
            "member": record["member"],
            "leader": record.get("leader") is True,
            "alive": record.get("alive") is not False,
            "connected": record.get("connected") if isinstance(record.get("connected"), bool) else None,
            "pid": count(record.get("pid")),
            "host": short_text(record.get("host")),
            **{k: unix_time(record.get(k)) for k in ("started_at", "timestamp", "died_at")},
        }
        shown["counters"] = {k: v for k in MEMBER_COUNTERS if (v := count(counters.get(k))) is not None}
        shown["estimated_lost"] = count(record.get("estimated_lost"))
        members.append(shown)
    return sorted(members, key=lambda m: (not m["leader"], m["member"]))


def bridge_health(
    heartbeat: dict[str, Any] | None,
    age: float | None,
    members: list[dict[str, Any]] | None = None,
    problem: str | None = None,
) -> dict[str, Any]:
    """The ``bridge_health`` event (and /health's ``bridge``) from the heartbeat, if any.

    ``age`` is the heartbeat's age by Redis's clock (bridge/contract/heartbeats.py), never by
    this host's: a bridge whose clock is off is judged by when it wrote, not by what it wrote.
    ``problem``: the heartbeat is there but cannot be read; the bridge's state is unknown, which
    /health must not count as online, and the page says why."""
    if heartbeat is None:
        health: dict[str, Any] = {
            "online": False,
            "heartbeat_age": None,
            "pid": None,
            "version": None,
            "started_at": None,
            "broker": None,
            "counters": {},
        }
        return health | {"problem": problem} if problem else health
    counters = heartbeat.get("counters")
    return {
        "online": problem is None and age is not None and age <= HEARTBEAT_TTL,
        "heartbeat_age": age,
        "pid": count(heartbeat.get("pid")),
        "version": short_text(heartbeat.get("version"), 64),
        "started_at": unix_time(heartbeat.get("started_at")),
        "broker": short_text(heartbeat.get("broker"), 300),
        "counters": _counters(counters) if isinstance(counters, dict) else {},
        **({"problem": problem} if problem else {}),
        **_group(heartbeat, members),
    }


def _counters(found: dict[str, Any]) -> dict[str, int]:
    """The counters that are counts; anything else a heartbeat holds is left out."""
    return {
        name: value for name, raw in found.items() if len(name) <= 64 and (value := count(raw)) is not None
    }


def _group(heartbeat: dict[str, Any], members: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A bridge group's heartbeat (the leader's) names the group: add who is in it."""
    name = short_text(heartbeat.get("group"))
    if name is None:
        return {}  # a single bridge: as before
    return {"group": {"name": name, "leader": short_text(heartbeat.get("leader")), "members": members or []}}


def history_message(entry_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """One history stream entry as the message JSON plus its stream ``id``; None if damaged."""
    message = loads_object(fields.get(HISTORY_FIELD))
    if message is None:
        return None
    message["id"] = entry_id
    return message


Entry = tuple[str, dict[str, Any]]


def _entries(raw: Any) -> list[Entry]:
    """redis-py types stream replies loosely; with decode_responses they are (str, dict[str, str])."""
    return list(raw or [])


def _wanted(message: dict[str, Any], topic_filter: str | None) -> bool:
    if topic_filter is None:
        return True
    topic = message.get("topic")
    return isinstance(topic, str) and topic_matches(topic_filter, topic)


class Store:
    """Typed reads over one redis-py client (created with ``decode_responses=True``)."""

    def __init__(self, client: redis.Redis, names: Names | None = None):
        self.redis = client
        self.names = names = names or Names()
        # LATEST's keys, moved to this broker's names by the one rule
        self._latest = {kind: per_broker_name(key, names.bridge_name) for kind, key in LATEST.items()}

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def latest(self, name: str) -> dict[str, Any] | None:
        """The last message of one kind (``status``, ``stats``, ``clients``, ``topics``)."""
        return loads_object(self.redis.get(self._latest[name]))

    def all_latest(self) -> dict[str, dict[str, Any] | None]:
        # One pipeline of GETs, not MGET: in a Redis Cluster these keys live in different slots.
        pipe = self.redis.pipeline(transaction=False)
        for key in self._latest.values():
            pipe.get(key)
        values = pipe.execute(raise_on_error=False)
        latest = {}
        for (name, key), raw in zip(self._latest.items(), values, strict=True):
            if isinstance(raw, redis.ResponseError):  # a key of another kind: as if absent
                REJECTED.report(key, "holds something other than a string")
                raw = None
            latest[name] = loads_object(raw)
        return latest

    def heartbeat(self) -> dict[str, Any] | None:
        return read_heartbeat(self.redis, self.names.KEY_HEARTBEAT).body

    def bridge_health(self) -> dict[str, Any]:
        """``bridge_health`` from the heartbeat, with a bridge group's members when there is one."""
        heartbeat = read_heartbeat(self.redis, self.names.KEY_HEARTBEAT)
        if heartbeat.problem:
            REJECTED.report(self.names.KEY_HEARTBEAT, heartbeat.problem)
        members = None
        if heartbeat.body is not None and "group" in heartbeat.body:
            try:
                members = group_members(self.redis.hgetall(self.names.KEY_MEMBERS))
            except redis.ResponseError:  # a key of another kind: the list stays empty
                REJECTED.report(self.names.KEY_MEMBERS, "holds something other than a hash")
        return bridge_health(heartbeat.body, heartbeat.age, members, heartbeat.problem)

    # --- history ---------------------------------------------------------------------------
    def recent(self, count: int) -> list[dict[str, Any]]:
        """The newest ``count`` messages, oldest first (for a snapshot)."""
        if count <= 0:
            return []
        entries = _entries(self.redis.xrevrange(self.names.KEY_HISTORY, count=count))
        messages = (history_message(entry_id, fields) for entry_id, fields in reversed(entries))
        return [m for m in messages if m is not None]

    def page(
        self, topic_filter: str | None, limit: int, before: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first, strictly older than ``before``; returns (messages, next_before)."""
        found: list[dict[str, Any]] = []
        entries = self._backwards(before, min(max(limit, 100), _CHUNK))
        for scanned, (entry_id, fields) in enumerate(entries, start=1):
            message = history_message(entry_id, fields)
            if message is not None and _wanted(message, topic_filter):
                found.append(message)
                if len(found) >= limit:
                    return found, entry_id
            if scanned >= SCAN_LIMIT:
                return found, entry_id
        return found, None

    def export(self, topic_filter: str | None, limit: int) -> Iterator[dict[str, Any]]:
        """Oldest first, up to ``limit`` matching messages, read in chunks as it is consumed."""
        sent = 0
        lower = "-"
        while sent < limit:
            chunk = _entries(self.redis.xrange(self.names.KEY_HISTORY, min=lower, count=_CHUNK))
            for entry_id, fields in chunk:
                message = history_message(entry_id, fields)
                if message is not None and _wanted(message, topic_filter):
                    yield message
                    sent += 1
                    if sent >= limit:
                        return
            if len(chunk) < _CHUNK:
                return
            lower = "(" + chunk[-1][0]

    def _backwards(self, before: str | None, chunk_size: int) -> Iterator[Entry]:
        upper = "+" if before is None else "(" + before
        while True:
            chunk = _entries(self.redis.xrevrange(self.names.KEY_HISTORY, max=upper, count=chunk_size))
            yield from chunk
            if len(chunk) < chunk_size:
                return
            upper = "(" + chunk[-1][0]

    # --- subscriptions -----------------------------------------------------------------------
    def subscriptions(self) -> list[dict[str, Any]]:
        """Filters added by command (removable) and the bridge's MQTT_TOPICS (from its heartbeat)."""
        stored = self.redis.hgetall(self.names.KEY_SUBSCRIPTIONS)
        result = [
            {"filter": name, **parse_subscription_record(raw), "source": "command"}
            for name, raw in sorted(stored.items())
        ]
        heartbeat = self.heartbeat() or {}
        for topic in config_topics(heartbeat):
            result.append({**topic, "created_at": heartbeat.get("started_at"), "source": "config"})
        return with_statistics(result, self.redis, self.names)

    def is_config_only(self, topic_filter: str) -> bool:
        """A filter from MQTT_TOPICS that no command added: not removable through the API."""
        if self.redis.hexists(self.names.KEY_SUBSCRIPTIONS, topic_filter):
            return False
        return any(t["filter"] == topic_filter for t in config_topics(self.heartbeat() or {}))


def config_topics(heartbeat: dict[str, Any]) -> list[dict[str, Any]]:
    """The heartbeat's ``topics``: plain filters, or objects with ``filter``/``topic`` and ``qos``."""
    raw = heartbeat.get("topics")
    topics: list[dict[str, Any]] = []
    if not isinstance(raw, list):
        return topics
    for item in raw:
        if isinstance(item, str):
            topics.append({"filter": item, "qos": None})
        elif isinstance(item, dict):
            name = item.get("filter", item.get("topic"))
            qos = item.get("qos")
            if isinstance(name, str):
                topics.append({"filter": name, "qos": qos if qos in (0, 1, 2) else None})
    return topics


def with_statistics(subscriptions: list[dict[str, Any]], client: Any, names: Names) -> list[dict[str, Any]]:
    """Each subscription with the bridge's counts for it (``messages``, ``bytes``,
    ``last_message_at``; zero and null before its first message) and whether it is ``paused``."""
    found = loads_object(client.get(names.KEY_SUBSCRIPTION_STATS)) or {}
    filters = found.get("filters")
    filters = filters if isinstance(filters, dict) else {}
    paused = {
        name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        for name in client.hkeys(names.KEY_SUBSCRIPTIONS_PAUSED)
    }
    for sub in subscriptions:
        stats = filters.get(sub["filter"])
        stats = stats if isinstance(stats, dict) else {}
        sub["messages"] = _count(stats.get("messages"))
        sub["bytes"] = _count(stats.get("bytes"))
        stamp = stats.get("last_message_at")
        number = isinstance(stamp, int | float) and not isinstance(stamp, bool)
        sub["last_message_at"] = stamp if number else None
        sub["paused"] = sub["filter"] in paused
    return subscriptions


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
