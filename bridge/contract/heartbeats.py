"""Reading a bridge's heartbeat and its age by Redis's clock, never by a host's.

A heartbeat carries its writer's ``timestamp``. A reader on another host that compared it with
its own clock would see the two clocks' difference as age: one bridge-group member 60 s behind
once made ``/health`` report the whole group down. Bridges write every heartbeat with a TTL of
HEARTBEAT_TTL, so Redis itself knows how long ago it was written: ``HEARTBEAT_TTL - PTTL``. A
heartbeat without that TTL (set by hand, say) falls back to its ``timestamp`` against Redis's
clock (``TIME``), which every reader shares.

The bridge's ``healthcheck`` and the dashboard both read heartbeats here, so they agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.contract.protocol import HEARTBEAT_TTL, loads_object
from bridge.contract.redis_values import unix_time


@dataclass(frozen=True)
class Heartbeat:
    """One heartbeat key as read: ``body`` is None when the key is absent or not a JSON object;
    ``problem`` says, in words, why a heartbeat that is there cannot vouch for its bridge (then
    ``body`` may still hold the rest of what it says); ``age`` in seconds is None when it cannot
    be told."""

    body: dict[str, Any] | None
    age: float | None
    problem: str | None = None

    @property
    def present(self) -> bool:
        return self.body is not None or self.problem is not None


def redis_now(client: Any) -> float:
    """Redis's clock (TIME), in Unix seconds."""
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1e6


def read_heartbeat(client: Any, key: str) -> Heartbeat:
    """GET and PTTL of ``key`` in one round trip (one key: fine in a Redis Cluster too). A
    value of the wrong kind is reported, not raised: the caller shows that one bridge as
    unreadable and carries on with the others."""
    pipe = client.pipeline(transaction=False)
    pipe.get(key)
    pipe.pttl(key)
    raw, pttl = pipe.execute(raise_on_error=False)
    if isinstance(raw, Exception):
        return Heartbeat(None, None, "the heartbeat key holds something other than a string")
    if raw is None:
        return Heartbeat(None, None)
    body = loads_object(raw)
    if body is None:
        return Heartbeat(None, None, "the heartbeat is not a JSON object")
    if unix_time(body.get("timestamp")) is None:  # a bridge always stamps it: this is damage
        return Heartbeat(body, None, "the heartbeat's timestamp is not a time in Unix seconds")
    ttl = pttl if isinstance(pttl, int) else -1
    return Heartbeat(body, age_of(ttl, body["timestamp"], lambda: redis_now(client)))


def age_of(pttl_ms: int, stamp: Any, now: Callable[[], float]) -> float | None:
    """Seconds since a heartbeat was written: from its remaining TTL when it has the one bridges
    set, else from its ``timestamp`` against ``now`` (Redis's clock); None when neither tells."""
    if 0 <= pttl_ms <= HEARTBEAT_TTL * 1000:
        return round(HEARTBEAT_TTL - pttl_ms / 1000, 3)
    written = unix_time(stamp)
    if written is None:
        return None
    return round(max(0.0, now() - written), 3)  # a stamp a little ahead must not look negative
