"""Everything the bridge writes to Redis, in as few round trips as possible."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from bridge import protocol
from bridge.server_versions import RedisVersionCheck

# One call per chunk: XADD and PUBLISH for every message, run inside Redis. Measured against a
# pipeline of two commands per message, this takes most of the Python work (packing commands)
# off the writer thread, which competes with paho's thread for the GIL.
#
# Exactly once per chunk, also when a reply is lost and the writer sends the chunk again: the
# script records "<token> <count>" in this process's mark key, and a chunk whose token is already
# there is not run again. XADD goes first and runs under pcall, so a refusal (Redis out of memory,
# a wrong key type) stops the chunk at a message boundary: the reply says how many messages were
# written whole, and the writer counts exactly those as forwarded. (Redis refuses a script's
# writes for memory only until its first write succeeds, so nothing is half-done.)
_FORWARD_CHUNK = """
local mark = redis.call('GET', KEYS[4])
if mark then
  local space = string.find(mark, ' ', 1, true)
  if space and string.sub(mark, 1, space - 1) == ARGV[2] then
    return {tonumber(string.sub(mark, space + 1)), '', 1}
  end
end
local maxlen = ARGV[1]
local applied = 0
local refused = ''
for i = 3, #ARGV do
  if maxlen ~= '0' then
    local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', KEYS[3], ARGV[i])
    if type(added) == 'table' and added.err then
      refused = added.err
      break
    end
  end
  redis.call('PUBLISH', KEYS[1], ARGV[i])
  applied = applied + 1
end
if applied > 0 then
  redis.pcall('SET', KEYS[4], ARGV[2] .. ' ' .. applied, 'EX', 3600)
end
return {applied, refused, 0}
"""

MAX_BATCH_BYTES = 4 * 1024 * 1024  # split larger batches so one call stays short


@dataclass(frozen=True)
class ChunkResult:
    """What one script call did: ``applied`` messages written whole (in order, from the first);
    ``refused`` is Redis's error for the next one, or ""; ``repeat`` when the chunk had already
    been written by an earlier call whose reply was lost."""

    applied: int
    refused: str
    repeat: bool

    @property
    def out_of_memory(self) -> bool:
        return self.refused.startswith("OOM")


def chunks(messages: Sequence[str], limit: int = MAX_BATCH_BYTES) -> list[tuple[int, int]]:
    """(start, end) ranges of at most ``limit`` bytes each (a larger message goes alone)."""
    ranges: list[tuple[int, int]] = []
    start, size = 0, 0
    for index, message in enumerate(messages):
        size += len(message)
        if size > limit and index > start:
            ranges.append((start, index))
            start, size = index, len(message)
    if start < len(messages):
        ranges.append((start, len(messages)))
    return ranges


def connect(url: str, version_check: RedisVersionCheck | None = None) -> redis.Redis:
    """A client for the bridge's threads (thread-safe pool); times out rather than hangs.

    With ``version_check``, every new connection first makes sure the server is new enough.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=15,
        retry_on_timeout=False,
        redis_connect_func=version_check,
    )


class RedisSink:
    def __init__(self, client: redis.Redis, history_maxlen: int, names: protocol.Names | None = None):
        self.client = client
        self.history_maxlen = history_maxlen
        self.names = names = names or protocol.Names()
        self._forward = client.register_script(_FORWARD_CHUNK)
        # One mark per bridge process, so two bridges (or a restart) never mistake each other's
        # chunks for their own.
        self.mark_key = names.KEY_APPLIED_PREFIX + uuid.uuid4().hex
        self._keys = [names.CHANNEL_MESSAGES, names.KEY_HISTORY, protocol.HISTORY_FIELD, self.mark_key]

    def forward_chunk(self, messages: Sequence[str], token: str, maxlen: int | None = None) -> ChunkResult:
        """PUBLISH on mqtt:messages and append to the history stream, in order, once per
        ``token``. Raises redis.ConnectionError/TimeoutError when the outcome is unknown: call
        again with the same token and nothing is written twice."""
        cap = self.history_maxlen if maxlen is None else maxlen
        reply = self._forward(keys=self._keys, args=[str(cap), token, *messages])
        applied, refused, repeat = reply
        if isinstance(refused, bytes):
            refused = refused.decode("utf-8", "replace")
        return ChunkResult(int(applied), str(refused), bool(repeat))

    def history_length(self) -> int:
        return int(self.client.xlen(self.names.KEY_HISTORY))

    def make_room(self) -> tuple[int, int] | None:
        """Redis refused a write for lack of memory: halve the history stream, the bridge's own
        bulk data. XTRIM frees memory, so Redis allows it even while it refuses every write.
        Returns (entries before, entries kept), or None when there was nothing left to cut."""
        length = self.history_length()
        if length <= 1:
            return None
        keep = length // 2
        # "~" trims whole stream nodes only and may free nothing from a short stream: then exactly.
        removed = self.client.xtrim(self.names.KEY_HISTORY, maxlen=keep, approximate=True)
        if not removed:
            removed = self.client.xtrim(self.names.KEY_HISTORY, maxlen=keep, approximate=False)
        return (length, keep) if removed else None

    def announce(self, channel: str, message: Mapping[str, Any]) -> None:
        """Publish a state message and keep it as the channel's ``:latest`` for late joiners.

        ``channel`` is the unnamed constant (``protocol.CHANNEL_STATUS``); a named bridge's sink
        moves it, and its latest key, under the bridge's own names."""
        text = protocol.dumps(message)
        bridge_name = self.names.bridge_name
        pipe = self.client.pipeline(transaction=False)
        pipe.set(protocol.per_broker_name(protocol.LATEST_KEY[channel], bridge_name), text)
        pipe.publish(protocol.per_broker_name(channel, bridge_name), text)
        pipe.execute()

    def heartbeat(self, body: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> None:
        """Refresh the heartbeat; with ``status``, also restore the status key (Redis may have
        restarted empty since it was last announced). The registry entry is refreshed with it,
        so dashboards find every bridge (and remember one that stopped)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.names.KEY_HEARTBEAT, protocol.dumps(body), ex=protocol.HEARTBEAT_TTL)
        pipe.zadd(protocol.KEY_BROKER_REGISTRY, {self.names.broker: time.time()})
        if status is not None:
            pipe.set(self.names.KEY_STATUS_LATEST, protocol.dumps(status))
        pipe.execute()

    def clear_heartbeat(self) -> None:
        self.client.delete(self.names.KEY_HEARTBEAT)

    def server_time(self) -> float:
        """Redis's clock (TIME), which every host that talks to it shares."""
        seconds, micros = self.client.time()
        return seconds + micros / 1e6

    def reply(self, result: Mapping[str, Any]) -> None:
        self.client.publish(self.names.CHANNEL_RESULTS, protocol.dumps(result))

    def load_subscriptions(self) -> dict[str, dict[str, Any]]:
        raw = self.client.hgetall(self.names.KEY_SUBSCRIPTIONS)
        return {
            (key.decode("utf-8", "replace") if isinstance(key, bytes) else key): (
                protocol.parse_subscription_record(value)
            )
            for key, value in raw.items()
        }

    def save_subscription(self, topic_filter: str, qos: int, created_at: float) -> None:
        self.client.hset(
            self.names.KEY_SUBSCRIPTIONS, topic_filter, protocol.subscription_record(qos, created_at)
        )

    def save_session_filters(self, session: str, filters: list[str]) -> None:
        self.client.hset(self.names.KEY_SESSION_FILTERS, session, protocol.dumps(filters))

    def load_session_filters(self, session: str) -> set[str]:
        raw = self.client.hget(self.names.KEY_SESSION_FILTERS, session)
        try:
            value = json.loads(raw) if raw is not None else []
        except ValueError:
            value = []
        return {f for f in value if isinstance(f, str)} if isinstance(value, list) else set()

    def delete_subscription(self, topic_filter: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(self.names.KEY_SUBSCRIPTIONS, topic_filter)
        pipe.hdel(self.names.KEY_SUBSCRIPTIONS_PAUSED, topic_filter)  # a pause ends with the filter
        pipe.execute()
