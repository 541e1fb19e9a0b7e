"""Slows down password guessing: failed logins are counted per client address in Redis, so every
worker and every dashboard host sees the same count; past the limit, that address waits.

Every credential counts (login form, ``/?token=``, Bearer header, Socket.IO ``auth``), and a
success does not reset the count: otherwise a legitimate client sharing the address (behind a
proxy, say) would keep wiping a guesser's count. Behind a reverse proxy set
DASHBOARD_TRUSTED_PROXIES so that each client is counted at its own address.
"""

from __future__ import annotations

import logging

import redis

from bridge.contract.protocol import KEY_LOGIN_FAILURES_PREFIX

logger = logging.getLogger(__name__)

LIMIT = 10  # failed attempts per address ...
WINDOW = 60  # ... within this many seconds


class LoginGuard:
    """Counts failures per address; with ``prefix=KEY_USER_LOGIN_FAILURES_PREFIX`` per user name
    instead (a guesser spreading one account's guesses over many addresses is slowed too)."""

    def __init__(
        self,
        client: redis.Redis,
        limit: int = LIMIT,
        window: int = WINDOW,
        prefix: str = KEY_LOGIN_FAILURES_PREFIX,
    ):
        self.redis = client
        self.limit = limit
        self.window = window
        self.prefix = prefix

    def _key(self, address: str | None) -> str:
        return self.prefix + (address or "unknown")

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
                "%d failed logins (%s); refusing more for up to %d s", count, self._key(address), self.window
            )
