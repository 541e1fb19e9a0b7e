"""Server-side dashboard sessions: the cookie holds a random id, Redis holds whether it is valid.

A signed cookie alone stays valid until it expires, logout or not; here logging out deletes
the Redis key, so a copied cookie stops working at once, on every worker. Redis sees only a
hash of the id mixed with the credentials' fingerprint: a changed token or password makes every
older session's key unreachable (all revoked), and nobody with Redis access can rebuild a
cookie or test a password guess from what is stored.
"""

from __future__ import annotations

import hashlib
import secrets
import time

import redis

from bridge.contract.protocol import CHANNEL_SESSION_REVOKED, KEY_DASHBOARD_SESSION_PREFIX, dumps, envelope

SESSION_ID_BYTES = 32
TYPE_SESSION_REVOKED = "session_revoked"
_MAX_ID_LENGTH = 100  # a real id is 43 characters; anything longer is not worth hashing


class SessionStore:
    def __init__(self, client: redis.Redis, fingerprint: str, ttl: int):
        self.redis = client
        self.fingerprint = fingerprint
        self.ttl = ttl

    def key(self, session_id: str) -> str:
        digest = hashlib.sha256(f"{self.fingerprint}\x00{session_id}".encode()).hexdigest()
        return KEY_DASHBOARD_SESSION_PREFIX + digest

    def create(self) -> str:
        """A new session, valid for ``ttl`` seconds after its last use; returns its id."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        self.redis.set(self.key(session_id), dumps({"created_at": time.time()}), ex=self.ttl)
        return session_id

    def valid(self, session_id: object) -> bool:
        """True while the session exists; each use extends it by ``ttl`` (an idle timeout).

        Raises redis.RedisError when Redis cannot be asked: the caller decides what that means.
        """
        if not isinstance(session_id, str) or not 0 < len(session_id) <= _MAX_ID_LENGTH:
            return False
        return self.redis.getex(self.key(session_id), ex=self.ttl) is not None

    def revoke(self, session_id: object) -> None:
        """End the session, and tell every worker to close the sockets opened with it."""
        if isinstance(session_id, str) and 0 < len(session_id) <= _MAX_ID_LENGTH:
            key = self.key(session_id)
            if self.redis.delete(key):
                self.redis.publish(
                    CHANNEL_SESSION_REVOKED, dumps(envelope(TYPE_SESSION_REVOKED, session=key))
                )


class SocketSessions:
    """Which of this worker's Socket.IO clients came in with which session (by its Redis key),
    so a logout anywhere can close them here too."""

    def __init__(self) -> None:
        self._key_of: dict[str, str] = {}

    def add(self, sid: str, key: str) -> None:
        self._key_of[sid] = key

    def remove(self, sid: str) -> None:
        self._key_of.pop(sid, None)

    def sids_of(self, key: str) -> list[str]:
        return [sid for sid, k in self._key_of.items() if k == key]
