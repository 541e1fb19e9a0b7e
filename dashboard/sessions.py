"""Server-side dashboard sessions: the cookie holds a random id, Redis holds whether it is valid
and whose it is.

A signed cookie alone stays valid until it expires, logout or not; here logging out deletes
the Redis key, so a copied cookie stops working at once, on every worker. Redis sees only a
hash of the id mixed with the credentials' fingerprint: a changed token or password makes every
older session's key unreachable (all revoked), and nobody with Redis access can rebuild a
cookie or test a password guess from what is stored.

A named user's session also records the user's ``stamp`` (dashboard/users.py): a change to the
user draws a new stamp, which ends all their sessions at once, and ``revoke_user`` tells every
worker to close their sockets.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import redis

from bridge.contract.protocol import (
    CHANNEL_SESSION_REVOKED,
    KEY_DASHBOARD_SESSION_PREFIX,
    dumps,
    envelope,
    loads_object,
)
from dashboard.policy import Principal

SESSION_ID_BYTES = 32
TYPE_SESSION_REVOKED = "session_revoked"
TYPE_USER_REVOKED = "user_revoked"
_MAX_ID_LENGTH = 100  # a real id is 43 characters; anything longer is not worth hashing


class SessionStore:
    def __init__(self, client: redis.Redis, fingerprint: str, ttl: int):
        self.redis = client
        self.fingerprint = fingerprint
        self.ttl = ttl

    def key(self, session_id: str) -> str:
        digest = hashlib.sha256(f"{self.fingerprint}\x00{session_id}".encode()).hexdigest()
        return KEY_DASHBOARD_SESSION_PREFIX + digest

    def create(self, user: str | None = None, stamp: str | None = None) -> str:
        """A new session, valid for ``ttl`` seconds after its last use; returns its id.

        ``user`` and ``stamp``: a named user's, or None for the bootstrap admin (the token).
        """
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        record = {"created_at": time.time(), "user": user, "stamp": stamp}
        self.redis.set(self.key(session_id), dumps(record), ex=self.ttl)
        return session_id

    def read(self, session_id: object) -> dict[str, Any] | None:
        """The session's record while it exists; each use extends it by ``ttl`` (an idle timeout).

        Raises redis.RedisError when Redis cannot be asked: the caller decides what that means.
        """
        if not isinstance(session_id, str) or not 0 < len(session_id) <= _MAX_ID_LENGTH:
            return None
        raw = self.redis.getex(self.key(session_id), ex=self.ttl)
        if raw is None:
            return None
        return loads_object(raw) or {}  # a record from before users: the bootstrap admin's

    def valid(self, session_id: object) -> bool:
        return self.read(session_id) is not None

    def revoke(self, session_id: object) -> None:
        """End the session, and tell every worker to close the sockets opened with it."""
        if isinstance(session_id, str) and 0 < len(session_id) <= _MAX_ID_LENGTH:
            key = self.key(session_id)
            if self.redis.delete(key):
                self.redis.publish(
                    CHANNEL_SESSION_REVOKED, dumps(envelope(TYPE_SESSION_REVOKED, session=key))
                )

    def revoke_user(self, username: str) -> None:
        announce_user_revoked(self.redis, username)


def announce_user_revoked(client: redis.Redis, username: str) -> None:
    """Tell every worker to close the sockets of ``username`` (their sessions already ended: the
    user's stamp changed, or the user is gone)."""
    client.publish(CHANNEL_SESSION_REVOKED, dumps(envelope(TYPE_USER_REVOKED, user=username)))


class SocketSessions:
    """Which of this worker's Socket.IO clients came in with which session (by its Redis key) and
    as whom, so a logout or a change to a user anywhere can close them here too."""

    def __init__(self) -> None:
        self._key_of: dict[str, str | None] = {}
        self._user_of: dict[str, Principal | None] = {}

    def add(self, sid: str, key: str | None, principal: Principal | None = None) -> None:
        self._key_of[sid] = key
        self._user_of[sid] = principal

    def remove(self, sid: str) -> None:
        self._key_of.pop(sid, None)
        self._user_of.pop(sid, None)

    def principal_of(self, sid: str) -> Principal | None:
        return self._user_of.get(sid)

    def sids_of(self, key: str) -> list[str]:
        return [sid for sid, k in self._key_of.items() if k == key]

    def sids_of_user(self, username: str) -> list[str]:
        return [sid for sid, p in self._user_of.items() if p is not None and p.named and p.name == username]
