"""The bridge group's leader lease: one Redis key with a TTL, renewed only by its holder, and a
fencing token that grows with every new lease.

Why not redis-py's ``Lock``: it has no automatic renewal and no fencing token. Here:

- Acquire: a one-key script issues the next token (``mqtt:bridge:leader:token``), then
  ``SET mqtt:bridge:leader <json> NX PX ttl``. Two calls, each on one key (Redis Cluster safe).
- Tokens never go backwards, also when Redis restarts empty: a token is the larger of the last
  one plus one and Redis's clock (``TIME``) in microseconds. A token issued before the restart is
  at most its issue time (plus one per lease issued within the same microsecond), so any token
  issued after it is larger, with no counter to remember. This assumes only that Redis's clock
  does not go back by more than the restart took; a counter that has lost its value (or holds
  one more than TOKEN_HORIZON ahead of the clock: damage) is seeded from the clock again.
- Renew: a one-key script extends the TTL only while the key still holds this holder's exact JSON.
- Time: the TTL is kept by Redis; this process trusts its own lease only until
  ``monotonic time the renewal was sent + ttl - margin``. The wall clock is never used, so a
  clock jump on this host neither extends nor shortens what it believes. A leader paused longer
  than the TTL wakes up to a passed deadline and steps down before doing anything; a write it had
  already started carries its stale token and is refused by the fenced writes (fencing.py).
- A lease key without a TTL (a hand-made one, say) would leave the group leaderless for ever:
  whoever finds one gives it the lease's TTL, so it runs out unless its holder renews it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import redis

from bridge.contract import protocol
from bridge.contract.redis_values import REJECTED

logger = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# Tokens more than this far ahead of Redis's clock (microseconds: one hour) were not issued here.
TOKEN_HORIZON = 3_600_000_000
_NEXT_TOKEN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local raw = redis.pcall('GET', KEYS[1])
local last = nil
if type(raw) == 'string' then
  last = tonumber(raw)
end
local damaged = 0
if raw and (last == nil or last ~= last or last < 0 or last > now + tonumber(ARGV[1])) then
  damaged = 1
  last = nil
end
if type(raw) == 'table' then
  redis.call('DEL', KEYS[1])
end
local token = now
if last and last + 1 > now then
  token = last + 1
end
local text = string.format('%.0f', token)
redis.call('SET', KEYS[1], text)
return {text, damaged}
"""  # noqa: S105 (a script that issues fencing tokens, not a secret)
_HELD = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then
  return 0
end
if ttl == -1 or ttl > tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return 2
end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaderLease:
    def __init__(
        self,
        client: redis.Redis,
        member: str,
        *,
        ttl: float = protocol.LEADER_TTL,
        margin: float = 1.0,
        names: protocol.Names,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.member = member
        self.key, self.token_key = names.KEY_LEADER, names.KEY_LEADER_TOKEN
        self.ttl = ttl
        self.margin = min(margin, ttl / 3)
        self.clock = clock
        self.token: int | None = None
        self._value: str | None = None
        self._deadline = 0.0
        self.since: float | None = None
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._next_token = client.register_script(_NEXT_TOKEN)
        self._held = client.register_script(_HELD)

    @property
    def _ttl_ms(self) -> int:
        return int(self.ttl * 1000)

    def leading(self) -> bool:
        """True only while this process's own (monotonic) deadline for its lease has not passed."""
        return self._value is not None and self.clock() < self._deadline

    def tick(self) -> bool:
        """Renew the lease held, or try to take a free one; call every LEADER_RENEW_INTERVAL.
        Redis errors are logged by the caller; the lease then simply runs out."""
        sent = self.clock()
        if self._value is not None:
            # Also past the local deadline: if Redis still holds this exact lease, nobody else
            # took it in between, so renewing it is safe.
            if self._renew(keys=[self.key], args=[self._value, self._ttl_ms]) == 1:
                self._deadline = sent + self.ttl - self.margin
            else:
                self._step_down("another member holds the lease now")
        if self._value is None:
            self._try_acquire(sent)
        return self.leading()

    def _try_acquire(self, sent: float) -> None:
        held = self._held(keys=[self.key], args=[self._ttl_ms])
        if held == 2:
            REJECTED.report(
                self.key, f"the leader lease had no TTL (or a longer one); it now runs out in {self.ttl:g} s"
            )
        if held:
            return
        text, damaged = self._next_token(keys=[self.token_key], args=[TOKEN_HORIZON])
        if damaged:
            REJECTED.report(
                self.token_key, "the token counter was not a number Redis's clock allows; seeded again"
            )
        token = int(text)
        seconds, micros = self.client.time()
        since = seconds + micros / 1e6
        value = protocol.dumps(
            {
                "member": self.member,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": since,
                "token": token,
            }
        )
        if self.client.set(self.key, value, nx=True, px=self._ttl_ms):
            self._value, self.token, self.since = value, token, since
            self._deadline = sent + self.ttl - self.margin
            logger.info("member %s leads the bridge group (fencing token %d)", self.member, token)

    def _step_down(self, why: str) -> None:
        logger.warning("member %s no longer leads the bridge group: %s", self.member, why)
        self._value, self.token, self.since = None, None, None

    def lose(self) -> None:
        """Forget the lease locally (Redis unreachable past the deadline)."""
        if self._value is not None:
            self._step_down("Redis could not be reached to renew the lease")

    def release(self) -> None:
        """At a clean stop: free the lease at once, so another member leads without waiting."""
        value, self._value, self.token = self._value, None, None
        if value is not None:
            self._release(keys=[self.key], args=[value])


def read_leader(client: redis.Redis, names: protocol.Names) -> dict[str, Any] | None:
    return protocol.loads_object(client.get(names.KEY_LEADER))
