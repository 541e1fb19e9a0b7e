"""How often one dashboard user may test broker settings: a count per minute in Redis, per login
session (else per Bearer token, else per address), so every worker and every dashboard host
counts the same. Each test makes the bridge connect to a host the user names; the bridge has a
limit of its own for everyone together (bridge/control/connection_commands.py)."""

from __future__ import annotations

import hashlib

import redis
from flask import Request

from bridge.contract.protocol import KEY_CONNECTION_TESTS_PREFIX
from dashboard.auth import Authenticator, bearer_token

LIMIT = 6  # connection tests (and switches, which test first) per user ...
WINDOW = 60  # ... within this many seconds


def who(auth: Authenticator, request: Request) -> str:
    """Whom a request's test counts against: its session, its token, or its address."""
    token = bearer_token(request.headers)
    if token is not None:
        return "token:" + token
    session_key = auth.session_store_key() if auth.enabled else None
    return f"session:{session_key}" if session_key else f"address:{request.remote_addr}"


def wait_needed(client: redis.Redis, asker: str) -> int | None:
    """Count one test for ``asker``; None when it may run, else the seconds until one may."""
    key = KEY_CONNECTION_TESTS_PREFIX + hashlib.sha256(asker.encode()).hexdigest()
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, WINDOW, nx=True)
    pipe.ttl(key)
    count, _, ttl = pipe.execute()
    if count <= LIMIT:
        return None
    return max(1, int(ttl))


def refusal(wait: int) -> str:
    return f"too many connection tests from this session: at most {LIMIT} a minute; try again in {wait} s"
