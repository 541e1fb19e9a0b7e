"""Per-filter statistics and pause/resume of a bridged filter (``cmd_pause_subscription``,
``cmd_resume_subscription``; docs/channels.md "Subscription statistics").

The writer counts each forwarded batch once per distinct topic, and each topic once for every
active filter that matches it, so a message matching two filters counts for both. A paused filter
is unsubscribed on the broker but stays listed (``mqtt:subscriptions:paused``), across restarts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis

from bridge.contract import protocol
from bridge.contract.redis_values import MAX_COUNT, count, unix_time
from bridge.control.commands import CommandProcessor
from bridge.group import membership
from bridge.ingest.subscriptions import SubscriptionSet

logger = logging.getLogger(__name__)

_CACHE_MAX = 10_000  # topics whose matching filters are remembered


class FilterStats:
    """messages, bytes and last_message_at per filter, since the bridge started."""

    def __init__(self, subscriptions: SubscriptionSet):
        self.subscriptions = subscriptions
        self.since = time.time()
        self._lock = threading.Lock()
        self._totals: dict[str, list[float]] = {}  # filter -> [messages, bytes, last_message_at]
        self._matches: dict[str, tuple[str, ...]] = {}
        self._version = -1

    def observe(self, items: Sequence[tuple[Any, ...]]) -> None:
        """Count a forwarded batch (writer thread): one pass per message, the rest per topic."""
        per_topic: dict[str, list[float]] = {}
        for item in items:
            entry = per_topic.get(item[0])
            if entry is None:
                per_topic[item[0]] = [1, len(item[1]), item[4]]
            else:
                entry[0] += 1
                entry[1] += len(item[1])
                entry[2] = item[4]
        if self._version != self.subscriptions.version:
            self._version = self.subscriptions.version
            self._matches = {}
        filters = None
        with self._lock:
            for topic, (count, size, stamp) in per_topic.items():
                matched = self._matches.get(topic)
                if matched is None:
                    if filters is None:
                        filters = [s.filter for s in self.subscriptions.active()]
                    matched = tuple(f for f in filters if protocol.topic_matches(f, topic))
                    if len(self._matches) >= _CACHE_MAX:
                        self._matches.clear()
                    self._matches[topic] = matched
                for topic_filter in matched:
                    total = self._totals.get(topic_filter)
                    if total is None:
                        self._totals[topic_filter] = [count, size, stamp]
                    else:
                        total[0] += count
                        total[1] += size
                        total[2] = max(total[2], stamp)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            totals = {f: list(t) for f, t in self._totals.items()}
        filters = {
            f: {"messages": int(t[0]), "bytes": int(t[1]), "last_message_at": t[2]} for f, t in totals.items()
        }
        return {"filters": filters, "since": self.since}

    def write(
        self,
        client: redis.Redis,
        names: protocol.Names | None = None,
        member: str | None = None,
        leading: bool = True,
    ) -> None:
        """Publish the snapshot to KEY_SUBSCRIPTION_STATS (housekeeping thread). A bridge group's
        member counts only its share of the messages: it keeps its snapshot under its ``member``
        id, and the leader writes the sum of the members'."""
        names = names or protocol.Names()
        snapshot = self.snapshot()
        if member is None:
            client.set(names.KEY_SUBSCRIPTION_STATS, protocol.dumps(snapshot))
            return
        client.hset(names.KEY_SUBSCRIPTION_STATS_MEMBERS, member, protocol.dumps(snapshot))
        if leading:
            listed = membership.read_members(client, names)  # the dead for a while, then forgotten
            shares = [
                found
                for key, raw in client.hgetall(names.KEY_SUBSCRIPTION_STATS_MEMBERS).items()
                if (key.decode() if isinstance(key, bytes) else key) in listed
                and (found := protocol.loads_object(raw)) is not None
            ]
            client.set(names.KEY_SUBSCRIPTION_STATS, protocol.dumps(merged_stats(shares)))


def merged_stats(shares: list[dict[str, Any]]) -> dict[str, Any]:
    """The group's counts from its members' snapshots: messages and bytes added up, the latest
    message time, and the earliest start."""
    filters: dict[str, dict[str, Any]] = {}
    # Each member's share comes back from Redis: only counts and times are taken from it (a huge
    # or infinite number would otherwise end up in JSON no browser can parse).
    since = [t for s in shares if (t := unix_time(s.get("since"))) is not None]
    for share in shares:
        found = share.get("filters")
        for topic_filter, stats in (found if isinstance(found, dict) else {}).items():
            if not isinstance(stats, dict):
                continue
            total = filters.setdefault(topic_filter, {"messages": 0, "bytes": 0, "last_message_at": None})
            for field in ("messages", "bytes"):
                value = count(stats.get(field))
                if value is not None:
                    total[field] = min(total[field] + value, MAX_COUNT)
            stamp = unix_time(stats.get("last_message_at"))
            if stamp is not None:
                last = total["last_message_at"]
                total["last_message_at"] = stamp if last is None else max(last, stamp)
    return {"filters": filters, "since": min(since) if since else None}


class SubscriptionPause:
    """The pause and resume commands, and the paused set kept in Redis."""

    def __init__(
        self, subscriptions: SubscriptionSet, client: redis.Redis, names: protocol.Names | None = None
    ):
        self.subscriptions = subscriptions
        self.redis = client
        self.processor: CommandProcessor | None = None
        self.paused_key = (names or protocol.Names()).KEY_SUBSCRIPTIONS_PAUSED

    def register(self, processor: CommandProcessor) -> None:
        self.processor = processor
        processor.register(protocol.CMD_PAUSE_SUBSCRIPTION, self.pause)
        processor.register(protocol.CMD_RESUME_SUBSCRIPTION, self.resume)

    def load(self) -> None:
        """Take up the paused filters saved by the last run (with the saved subscriptions)."""
        for raw in self.redis.hkeys(self.paused_key):
            topic_filter = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if self.subscriptions.has(topic_filter):
                self.subscriptions.set_paused(topic_filter, True)
            else:  # unsubscribed since, or gone from MQTT_TOPICS: forget the pause
                self.redis.hdel(self.paused_key, topic_filter)

    def follow(self) -> bool:
        """Bridge group, every member: match the paused set kept in Redis, in case this member
        missed a pause or resume command. True when something changed (then apply the set)."""
        wanted = set()
        for raw in self.redis.hkeys(self.paused_key):
            topic_filter = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if self.subscriptions.has(topic_filter):
                wanted.add(topic_filter)
        held = set(self.subscriptions.paused())
        for topic_filter in wanted ^ held:
            self.subscriptions.set_paused(topic_filter, topic_filter in wanted)
        return wanted != held

    def pause(self, command: protocol.Command) -> str | None:
        topic_filter = command.topic
        if not self.subscriptions.has(topic_filter):
            return f"the bridge does not bridge {topic_filter!r}, so there is nothing to pause"
        if topic_filter in self.subscriptions.paused():
            return None  # already paused: the goal is met
        record = {"qos": _qos_of(self.subscriptions, topic_filter), "paused_at": time.time()}
        self.redis.hset(self.paused_key, topic_filter, json.dumps(record))
        return self._change(topic_filter, True)

    def resume(self, command: protocol.Command) -> str | None:
        topic_filter = command.topic
        if topic_filter not in self.subscriptions.paused():
            if not self.subscriptions.has(topic_filter):
                return f"the bridge does not bridge {topic_filter!r}, so there is nothing to resume"
            return None  # not paused: the goal is met
        self.redis.hdel(self.paused_key, topic_filter)
        return self._change(topic_filter, False)

    def _change(self, topic_filter: str, paused: bool) -> str | None:
        assert self.processor is not None, "register() first"
        before = dict(self.subscriptions.broker_filters())
        self.subscriptions.set_paused(topic_filter, paused)
        error = self.processor.apply(before)
        if error is not None:
            logger.warning("%s of %r: %s", "pause" if paused else "resume", topic_filter, error)
        return error


def _qos_of(subscriptions: SubscriptionSet, topic_filter: str) -> int:
    return next((s.qos for s in subscriptions.all() if s.filter == topic_filter), 0)
