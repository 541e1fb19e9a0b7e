"""Everything the bridge writes to Redis, in as few round trips as possible."""

from __future__ import annotations

import binascii
import json
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from bridge.contract import protocol, redis_topology
from bridge.contract.env import RedisSettings
from bridge.contract.server_versions import RedisVersionCheck

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
#
# KEYS are the history stream and the mark only, and the mark key is chosen to hash to the
# stream's slot (see ``mark_key_for``): so the script runs in a Redis Cluster too. The channel
# and the stream's field name are not keys and travel in ARGV.
_FORWARD_CHUNK = """
local mark = redis.call('GET', KEYS[2])
if mark then
  local space = string.find(mark, ' ', 1, true)
  if space and string.sub(mark, 1, space - 1) == ARGV[2] then
    return {tonumber(string.sub(mark, space + 1)), '', 1}
  end
end
local maxlen = ARGV[1]
local channel = ARGV[3]
local field = ARGV[4]
local applied = 0
local refused = ''
for i = 5, #ARGV do
  if maxlen ~= '0' then
    local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', field, ARGV[i])
    if type(added) == 'table' and added.err then
      refused = added.err
      break
    end
  end
  redis.call('PUBLISH', channel, ARGV[i])
  applied = applied + 1
end
if applied > 0 then
  redis.pcall('SET', KEYS[2], ARGV[2] .. ' ' .. applied, 'EX', 3600)
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


def chunks(messages: Sequence[str | bytes], limit: int = MAX_BATCH_BYTES) -> list[tuple[int, int]]:
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


def connect(where: RedisSettings | str, version_check: RedisVersionCheck | None = None) -> Any:
    """A client for the bridge's threads (thread-safe pool); times out rather than hangs.

    ``where``: the Redis settings (standalone, Sentinel or Cluster) or a plain URL. With
    ``version_check``, every new connection first makes sure the server is new enough.
    """
    return redis_topology.connect(
        where,
        version_check,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=15,
        retry_on_timeout=False,
    )


def mark_key_for(stream_key: str, prefix_name: str = protocol.KEY_APPLIED_PREFIX) -> str:
    """A new ``<KEY_APPLIED_PREFIX><32 hex>`` key in the same Redis Cluster hash slot as
    ``stream_key``, so the forwarding script's two keys share a slot without renaming either
    (a hash tag would have changed both names). About 16,000 tries on average: milliseconds."""
    prefix = (prefix_name + uuid.uuid4().hex[:24]).encode()
    wanted = key_slot(stream_key.encode())
    # CRC16 continues over the suffix alone (the slot is CRC16 mod 16384 without a hash tag);
    # key_slot confirms, so a hash tag in either name is handled too.
    start = binascii.crc_hqx(prefix, 0)
    for n in range(1 << 20):  # missing all 16384 slots' one in a million tries: about e**-64
        suffix = b"%08x" % n
        if binascii.crc_hqx(suffix, start) % 16384 == wanted or n == 0:
            candidate = prefix + suffix
            if key_slot(candidate) == wanted:
                return candidate.decode()
    raise AssertionError(f"no mark key in the slot of {stream_key!r}")  # pragma: no cover


class RedisSink:
    def __init__(self, client: redis.Redis, history_maxlen: int, names: protocol.Names | None = None):
        self.client = client
        self.history_maxlen = history_maxlen
        self.names = names = names or protocol.Names()
        self._cluster = redis_topology.is_cluster(client)
        self._forward = client.register_script(_FORWARD_CHUNK)
        # One mark per bridge process, so two bridges (or a restart) never mistake each other's
        # chunks for their own.
        self.mark_key = mark_key_for(names.KEY_HISTORY, names.KEY_APPLIED_PREFIX)
        self._keys = [names.KEY_HISTORY, self.mark_key]
        self._fixed_args = [names.CHANNEL_MESSAGES, protocol.HISTORY_FIELD]
        self._connection: Any = None  # the writer's own connection (see _forward_direct)
        self._reader_socket: Any = None
        self._reader: Any = None

    def forward_chunk(
        self, messages: Sequence[str | bytes], token: str, maxlen: int | None = None
    ) -> ChunkResult:
        """PUBLISH on mqtt:messages and append to the history stream, in order, once per
        ``token``. Raises redis.ConnectionError/TimeoutError when the outcome is unknown: call
        again with the same token and nothing is written twice."""
        cap = self.history_maxlen if maxlen is None else maxlen
        args = [str(cap), token, *self._fixed_args, *messages]
        if self._cluster or not hasattr(self.client, "connection_pool"):
            reply = self._forward(keys=self._keys, args=args)
        else:
            reply = self._forward_direct(args)
        applied, refused, repeat = reply
        if isinstance(refused, bytes):
            refused = refused.decode("utf-8", "replace")
        return ChunkResult(int(applied), str(refused), bool(repeat))

    def _forward_direct(self, args: list[Any]) -> Any:
        """EVALSHA on a connection of this sink's own (the writer is its only user): no pool
        checkout, no clean-connection poll and no retry wrapper per call, which cost more than the
        call itself when messages come one at a time (2,000/s: the writer writes each alone, for
        latency). It is made by the pool (same server, credentials, TLS; a Sentinel pool's finds
        the master) but not lent by it, so it goes when the sink goes. A failed call closes it and
        raises as redis-py would; the next call connects again."""
        connection = self._connection
        if connection is None:
            connection = self._connection = self.client.connection_pool.make_connection()
        try:
            try:
                return self._call(connection, args)
            except NoScriptError:  # Redis restarted empty (or SCRIPT FLUSH): load it again, once
                self._forward.sha = self.client.script_load(_FORWARD_CHUNK)
                return self._call(connection, args)
        except redis.ResponseError:
            raise  # Redis answered: the connection is fine
        except BaseException:
            connection.disconnect()
            raise

    def _call(self, connection: Any, args: list[Any]) -> Any:
        sock = getattr(connection, "_sock", None)
        if sock is None:
            connection.connect()
            sock = getattr(connection, "_sock", None)
        command = ("EVALSHA", self._forward.sha, 2, *self._keys, *args)
        if not isinstance(sock, socket.socket):  # not a real socket (fakeredis in tests)
            connection.send_packed_command(connection.pack_command(*command), check_health=False)
            return connection.read_response()
        # The socket itself, and a reply reader of this sink's own: redis-py's layers around one
        # call cost as much as the call when messages come one at a time.
        if sock is not self._reader_socket:  # a new connection: nothing half-read carries over
            self._reader_socket, self._reader = sock, hiredis.Reader(replyError=redis.ResponseError)
        reader = self._reader
        try:
            sock.sendall(hiredis.pack_command(command))
            reply = reader.gets()
            while reply is False:
                data = sock.recv(65536)
                if not data:
                    raise redis.ConnectionError("Redis closed the connection")
                reader.feed(data)
                reply = reader.gets()
        except TimeoutError as exc:  # socket.timeout
            raise redis.TimeoutError(f"Redis did not answer in time: {exc}") from exc
        except OSError as exc:
            raise redis.ConnectionError(f"lost the connection to Redis: {exc}") from exc
        if isinstance(reply, redis.ResponseError):
            if str(reply).startswith("NOSCRIPT"):
                raise NoScriptError(str(reply))
            raise reply
        return reply

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
        latest = protocol.per_broker_name(protocol.LATEST_KEY[channel], bridge_name)
        channel = protocol.per_broker_name(channel, bridge_name)
        if self._cluster:
            # redis-py refuses PUBLISH in a cluster pipeline: two calls, in the same order.
            self.client.set(latest, text)
            self.client.publish(channel, text)
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.set(latest, text)
        pipe.publish(channel, text)
        pipe.execute()

    def heartbeat(self, body: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> None:
        """Refresh the heartbeat; with ``status``, also restore the status key (Redis may have
        restarted empty since it was last announced). The registry entry is refreshed with it,
        so dashboards find every bridge (and remember one that stopped)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.names.KEY_HEARTBEAT, protocol.dumps(body), ex=protocol.HEARTBEAT_TTL)
        self._register(pipe)
        if status is not None:
            pipe.set(self.names.KEY_STATUS_LATEST, protocol.dumps(status))
        pipe.execute()

    def register(self) -> None:
        """Refresh this bridge's registry entry alone (a group member: its heartbeat is its own)."""
        self._register(self.client)

    def _register(self, client: Any) -> None:
        client.zadd(protocol.KEY_BROKER_REGISTRY, {self.names.broker: time.time()})

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
