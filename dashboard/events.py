"""Socket.IO handlers: refuse unauthenticated connects, send the snapshot, track filters."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import redis
from flask import request
from flask_socketio import ConnectionRefusedError, emit, join_room, leave_room

from bridge.errors import InvalidCommand
from dashboard.auth import TOO_MANY, Check
from dashboard.extensions import Services
from dashboard.frames import EVERYTHING, normalise_filter, room_for
from dashboard.store import bridge_health

logger = logging.getLogger(__name__)


def snapshot(services: Services) -> dict[str, Any]:
    """What a new page needs: the latest of everything, bridge health, recent history."""
    base: dict[str, Any] = {"worker": os.getpid(), "auth": services.settings.auth_mode}
    store = services.store
    try:
        latest = store.all_latest()
        health = store.bridge_health(time.time()) | {"redis": True}
        messages = store.recent(services.settings.history_on_connect)
    except redis.RedisError as exc:
        # Still connect: the page can show "Redis unreachable", and the relay sends updates later.
        logger.warning(
            "snapshot without data: Redis at %s is not reachable (%s)", services.settings.redis.where, exc
        )
        latest = {"status": None, "stats": None, "clients": None, "topics": None}
        health = bridge_health(None, time.time()) | {"redis": False}
        messages = []
    return base | latest | {"bridge": health, "messages": messages}


def register_events(services: Services) -> None:
    socketio = services.socketio
    router = services.router
    metrics = services.metrics

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        try:
            check = services.auth.socket_check(auth, request.headers, request.remote_addr)
        except redis.RedisError:
            raise ConnectionRefusedError("the dashboard cannot reach Redis to check the login") from None
        if check is Check.BLOCKED:
            raise ConnectionRefusedError(TOO_MANY)
        if check is not Check.OK:
            raise ConnectionRefusedError("not logged in")
        services.relay.ensure_started()
        sid = _sid()
        session_key = services.auth.session_store_key()
        if session_key is not None:
            services.socket_sessions.add(sid, session_key)
        router.add_client(sid, EVERYTHING)
        join_room(room_for(EVERYTHING))
        metrics.socket_clients.set(router.client_count)
        emit("snapshot", snapshot(services))

    @socketio.on("disconnect")
    def on_disconnect(*_reason: Any) -> None:
        services.socket_sessions.remove(_sid())
        router.remove_client(_sid())
        metrics.socket_clients.set(router.client_count)

    @socketio.on("set_filter")
    def on_set_filter(data: Any = None) -> dict[str, Any]:
        if not isinstance(data, dict):
            return {"ok": False, "error": 'set_filter needs {"filter": "<MQTT topic filter>"}'}
        try:
            topic_filter = normalise_filter(data.get("filter"))
        except InvalidCommand as exc:
            return {"ok": False, "error": str(exc)}
        sid = _sid()
        old = router.set_filter(sid, topic_filter)
        if old != topic_filter:
            leave_room(room_for(old))
            join_room(room_for(topic_filter))
        return {"ok": True}


def _sid() -> str:
    # Flask-SocketIO adds ``sid`` to the request while a handler runs.
    sid: str = request.sid  # type: ignore[attr-defined]
    return sid
