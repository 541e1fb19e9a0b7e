"""Socket.IO handlers: refuse unauthenticated connects, send the snapshot, track filters."""

from __future__ import annotations

import logging
import os
from typing import Any

import redis
from flask import request
from flask_socketio import ConnectionRefusedError, emit, join_room, leave_room

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import UNNAMED_BROKER
from dashboard.auth import TOO_MANY, Check
from dashboard.brokers import valid_broker
from dashboard.extensions import Services
from dashboard.frames import EVERYTHING, broker_room, normalise_filter, room_for
from dashboard.store import bridge_health

logger = logging.getLogger(__name__)


def snapshot(services: Services, broker: str = UNNAMED_BROKER) -> dict[str, Any]:
    """What a new page needs: the latest of everything, bridge health, recent history."""
    base: dict[str, Any] = {"worker": os.getpid(), "auth": services.settings.auth_mode, "broker": broker}
    store = services.store if broker == UNNAMED_BROKER else services.brokers.store(broker)
    try:
        latest = store.all_latest()
        health = store.bridge_health() | {"redis": True}
        messages = store.recent(services.settings.history_on_connect)
    except redis.RedisError as exc:
        # Still connect: the page can show "Redis unreachable", and the relay sends updates later.
        logger.warning(
            "snapshot without data: Redis at %s is not reachable (%s)", services.settings.redis.where, exc
        )
        latest = {"status": None, "stats": None, "clients": None, "topics": None}
        health = bridge_health(None, None) | {"redis": False}
        messages = []
    return base | latest | {"bridge": health, "messages": messages}


def register_events(services: Services) -> None:
    socketio = services.socketio
    routers = services.routers
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
        # One socket watches one broker for its whole life: the page reconnects to switch, so
        # no frame of the old broker can arrive after the switch.
        broker = _broker_asked(auth)
        services.relay.ensure_started()
        # Read before the socket is registered anywhere: should it fail, nothing is left behind
        # (a router kept for a socket that never connected would buffer for nobody for ever).
        first = snapshot(services, broker)
        sid = _sid()
        session_key = services.auth.session_store_key()
        if session_key is not None:
            services.socket_sessions.add(sid, session_key)
        routers.add_client(sid, broker, EVERYTHING)
        join_room(broker_room(broker))
        join_room(room_for(EVERYTHING, broker))
        metrics.socket_clients.set(routers.client_count)
        emit("snapshot", first)

    @socketio.on("disconnect")
    def on_disconnect(*_reason: Any) -> None:
        services.socket_sessions.remove(_sid())
        routers.remove_client(_sid())
        metrics.socket_clients.set(routers.client_count)

    @socketio.on("set_filter")
    def on_set_filter(data: Any = None) -> dict[str, Any]:
        if not isinstance(data, dict):
            return {"ok": False, "error": 'set_filter needs {"filter": "<MQTT topic filter>"}'}
        try:
            topic_filter = normalise_filter(data.get("filter"))
        except InvalidCommand as exc:
            return {"ok": False, "error": str(exc)}
        sid = _sid()
        router = routers.router_of(sid)
        old = router.set_filter(sid, topic_filter)
        if old != topic_filter:
            leave_room(room_for(old, router.broker))
            join_room(room_for(topic_filter, router.broker))
        return {"ok": True}


def _broker_asked(auth: Any) -> str:
    """The broker a socket asks for: ``auth={"broker": …}`` or ``?broker=…``; the unnamed one if neither."""
    asked = auth.get("broker") if isinstance(auth, dict) else None
    if asked is None:
        asked = request.args.get("broker")
    if asked is None or asked == "":
        return UNNAMED_BROKER
    if not isinstance(asked, str) or not valid_broker(asked):
        raise ConnectionRefusedError(
            "broker must be a bridge name (lower-case letters, digits and -, at most 32) or 'default'"
        )
    return asked


def _sid() -> str:
    # Flask-SocketIO adds ``sid`` to the request while a handler runs.
    sid: str = request.sid  # type: ignore[attr-defined]
    return sid
