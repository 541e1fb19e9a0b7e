"""Slows down password guessing: failed logins are counted per client address in Redis, so every
worker and every dashboard host sees the same count; past the limit, that address waits.

Behind a reverse proxy every client has the proxy's address: the limit then applies to all of
them together, which errs on the safe side.
"""

from __future__ import annotations

import contextlib
import logging

import redis

from bridge.protocol import KEY_LOGIN_FAILURES_PREFIX

logger = logging.getLogger(__name__)

LIMIT = 10  # failed attempts per address ...
WINDOW = 60  # ... within this many seconds


class LoginGuard:
    def __init__(self, client: redis.Redis, limit: int = LIMIT, window: int = WINDOW):
        self.redis = client
        self.limit = limit
        self.window = window

    def _key(self, address: str | None) -> str:
        return KEY_LOGIN_FAILURES_PREFIX + (address or "unknown")

    def blocked(self, address: str | None) -> bool:
        try:
            count = int(self.redis.get(self._key(address)) or 0)
        except (redis.RedisError, ValueError):
            return False  # without Redis the dashboard shows nothing anyway; do not lock people out
        return count >= self.limit

    def failed(self, address: str | None) -> None:
        key = self._key(address)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, self.window, nx=True)
            count, _ = pipe.execute()
        except redis.RedisError:
            return
        if count == self.limit:
            logger.warning(
                "%d failed logins from %s; refusing it for up to %d s", count, address, self.window
            )

    def succeeded(self, address: str | None) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(self._key(address))
