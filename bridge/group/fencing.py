"""Leader-only writes, fenced: a state message is stored and published only if no later leader
(a higher fencing token) has written that key already.

One key per script (the ``:latest`` key; the channel travels in ARGV), so it fits Redis Cluster.
The token travels inside the message as ``leader_token``, where readers can see it too.

A token in the key that no lease can have issued (more than TOKEN_HORIZON ahead of Redis's
clock: lease.py) is damage, not a later leader: it is written over, or it would refuse every
leader's writes for ever and freeze the stats and status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from bridge.contract import protocol
from bridge.contract.redis_values import REJECTED
from bridge.group.lease import TOKEN_HORIZON

# 0: refused (a later leader wrote); 1: written; 2: written over a token no lease issued.
_FENCED_ANNOUNCE = """
local current = redis.call('GET', KEYS[1])
local damaged = 0
if current then
  local seen = string.match(current, '"leader_token":(%d+)')
  if seen then
    seen = tonumber(seen)
    local t = redis.call('TIME')
    local horizon = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[5])
    if seen > horizon then
      damaged = 1
    elseif seen > tonumber(ARGV[2]) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[4] == '1' then
  redis.call('PUBLISH', ARGV[1], ARGV[3])
end
return 1 + damaged
"""


class FencedAnnouncer:
    def __init__(self, client: redis.Redis, names: protocol.Names):
        self._script = client.register_script(_FENCED_ANNOUNCE)
        self.names = names
        self.refused = 0  # writes refused because a later leader had written

    def announce(self, channel: str, message: Mapping[str, Any], token: int, publish: bool = True) -> bool:
        """True when written; False when a later leader's token was already there. Without
        ``publish`` only the ``:latest`` key is restored (after a Redis restart, say)."""
        text = protocol.dumps({**message, "leader_token": token})
        # ``channel`` is the unnamed constant; a named bridge's group writes under its own names.
        channel = protocol.per_broker_name(channel, self.names.bridge_name)
        latest = self.names.latest_key[channel]
        args = [channel, str(token), text, "1" if publish else "0", str(TOKEN_HORIZON)]
        done = self._script(keys=[latest], args=args)
        if done == 2:
            REJECTED.report(latest, "its leader_token is beyond any token a lease has issued; written over")
        if not done:
            self.refused += 1
        return bool(done)
