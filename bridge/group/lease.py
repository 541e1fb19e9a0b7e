"""The bridge group's leader lease: one Redis key with a TTL, renewed only by its holder, and a
fencing token that grows with every new lease.

Why not redis-py's ``Lock``: it has no automatic renewal and no fencing token. Here:

- Acquire: ``INCR mqtt:bridge:leader:token`` (a new token, never reused), then
  ``SET mqtt:bridge:leader <json> NX PX ttl``. Two commands, each on one key (Redis Cluster safe).
- Renew: a one-key script extends the TTL only while the key still holds this holder's exact JSON.
- Time: the TTL is kept by Redis; this process trusts its own lease only until
  ``monotonic time the renewal was sent + ttl - margin``. The wall clock is never used, so a
  clock jump on this host neither extends nor shortens what it believes. A leader paused longer
  than the TTL wakes up to a passed deadline and steps down before doing anything; a write it had
  already started carries its stale token and is refused by the fenced writes (bridge/fenced.py).
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

logger = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
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
        if self.client.exists(self.key):
            return
        token = int(self.client.incr(self.token_key))
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
