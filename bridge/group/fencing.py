"""Leader-only writes, fenced: a state message is stored and published only if no later leader
(a higher fencing token) has written that key already.

One key per script (the ``:latest`` key; the channel travels in ARGV), so it fits Redis Cluster.
The token travels inside the message as ``leader_token``, where readers can see it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from bridge.contract import protocol

_FENCED_ANNOUNCE = """
local current = redis.call('GET', KEYS[1])
if current then
  local seen = string.match(current, '"leader_token":(%d+)')
  if seen and tonumber(seen) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[4] == '1' then
  redis.call('PUBLISH', ARGV[1], ARGV[3])
end
return 1
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
        done = self._script(keys=[latest], args=[channel, str(token), text, "1" if publish else "0"]) == 1
        if not done:
            self.refused += 1
        return done
