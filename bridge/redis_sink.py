"""Everything the bridge writes to Redis, in as few round trips as possible."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

from bridge import protocol

# One call per batch: PUBLISH and XADD for every message, run inside Redis. Measured against a
# pipeline of two commands per message, this takes most of the Python work (packing commands)
# off the writer thread, which competes with paho's thread for the GIL.
_FORWARD_BATCH = """
local maxlen = ARGV[1]
for i = 2, #ARGV do
  redis.call('PUBLISH', KEYS[1], ARGV[i])
  if maxlen ~= '0' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', KEYS[3], ARGV[i])
  end
end
return #ARGV - 1
"""

MAX_BATCH_BYTES = 4 * 1024 * 1024  # split larger batches so one call stays short


def connect(url: str) -> redis.Redis:
    """A client for the bridge's threads (thread-safe pool); times out rather than hangs."""
    return redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=15,
        retry_on_timeout=False,
    )


class RedisSink:
    def __init__(self, client: redis.Redis, history_maxlen: int):
        self.client = client
        self._maxlen = str(history_maxlen)
        self._forward = client.register_script(_FORWARD_BATCH)
        self._keys = [protocol.CHANNEL_MESSAGES, protocol.KEY_HISTORY, protocol.HISTORY_FIELD]

    def forward(self, messages: Sequence[str]) -> None:
        """PUBLISH on mqtt:messages and append to the history stream, in order."""
        start, size = 0, 0
        for index, message in enumerate(messages):
            size += len(message)
            if size > MAX_BATCH_BYTES and index > start:
                self._forward(keys=self._keys, args=[self._maxlen, *messages[start:index]])
                start, size = index, len(message)
        if start < len(messages):
            self._forward(keys=self._keys, args=[self._maxlen, *messages[start:]])

    def announce(self, channel: str, message: Mapping[str, Any]) -> None:
        """Publish a state message and keep it as the channel's ``:latest`` for late joiners."""
        text = protocol.dumps(message)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(protocol.LATEST_KEY[channel], text)
        pipe.publish(channel, text)
        pipe.execute()

    def heartbeat(self, body: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> None:
        """Refresh the heartbeat; with ``status``, also restore the status key (Redis may have
        restarted empty since it was last announced)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(protocol.KEY_HEARTBEAT, protocol.dumps(body), ex=protocol.HEARTBEAT_TTL)
        if status is not None:
            pipe.set(protocol.KEY_STATUS_LATEST, protocol.dumps(status))
        pipe.execute()

    def clear_heartbeat(self) -> None:
        self.client.delete(protocol.KEY_HEARTBEAT)

    def server_time(self) -> float:
        """Redis's clock (TIME), which every host that talks to it shares."""
        seconds, micros = self.client.time()
        return seconds + micros / 1e6

    def reply(self, result: Mapping[str, Any]) -> None:
        self.client.publish(protocol.CHANNEL_RESULTS, protocol.dumps(result))

    def load_subscriptions(self) -> dict[str, dict[str, Any]]:
        raw = self.client.hgetall(protocol.KEY_SUBSCRIPTIONS)
        return {
            (key.decode("utf-8", "replace") if isinstance(key, bytes) else key): (
                protocol.parse_subscription_record(value)
            )
            for key, value in raw.items()
        }

    def save_subscription(self, topic_filter: str, qos: int, created_at: float) -> None:
        self.client.hset(
            protocol.KEY_SUBSCRIPTIONS, topic_filter, protocol.subscription_record(qos, created_at)
        )

    def delete_subscription(self, topic_filter: str) -> None:
        self.client.hdel(protocol.KEY_SUBSCRIPTIONS, topic_filter)
