"""Socket.IO handlers: refuse unauthenticated connects, send the snapshot, track filters.

A connect is checked like a request (dashboard/policy.py, ``EVENT_RULES["connect"]``); the other
events are wrapped by dashboard/access.py. A tenant user's socket watches only the tenant's topics:
its filter starts as the tenant's and can only be narrowed, and it joins its tenant's room, not
the broker's (dashboard/tenant_rooms.py).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import redis
from flask import request
from flask_socketio import ConnectionRefusedError, emit, join_room, leave_room

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import UNNAMED_BROKER
from dashboard import policy
from dashboard.access import principal_view
from dashboard.auth import TOO_MANY, Check
from dashboard.brokers import valid_broker
from dashboard.extensions import Services
from dashboard.frames import EVERYTHING, broker_room, normalise_filter, room_for
from dashboard.policy import OutOfScope, Principal, TopicScope
from dashboard.store import bridge_health
from dashboard.tenant_view import scoped_clients, scoped_health, scoped_topics

logger = logging.getLogger(__name__)


def snapshot(
    services: Services, broker: str = UNNAMED_BROKER, principal: Principal | None = None
) -> dict[str, Any]:
    """What a new page needs: the latest of everything, bridge health, recent history (for a
    tenant user: their cut of it)."""
    base: dict[str, Any] = {"worker": os.getpid(), "auth": services.settings.auth_mode, "broker": broker}
    if principal is not None:
        base["user"] = principal_view(principal, services.settings.tenant_prefix)
    store = services.store if broker == UNNAMED_BROKER else services.brokers.store(broker)
    scope = policy.topic_scope(principal, services.settings.tenant_prefix)
    try:
        latest = store.all_latest()
        health = store.bridge_health() | {"redis": True}
        if scope is None:
            messages = store.recent(services.settings.history_on_connect)
        else:
            latest, health = _scoped_latest(services, broker, scope, latest), scoped_health(health)
            count = services.settings.history_on_connect
            messages = store.page(scope.filter, count, None)[0][::-1] if count > 0 else []  # oldest first
    except redis.RedisError as exc:
        # Still connect: the page can show "Redis unreachable", and the relay sends updates later.
        logger.warning(
            "snapshot without data: Redis at %s is not reachable (%s)", services.settings.redis.where, exc
        )
        latest = {"status": None, "stats": None, "clients": None, "topics": None}
        health = bridge_health(None, None) | {"redis": False}
        messages = []
    return base | latest | {"bridge": health, "messages": messages}


def _scoped_latest(
    services: Services, broker: str, scope: TopicScope, latest: dict[str, Any]
) -> dict[str, Any]:
    clients, topics = latest["clients"], latest["topics"]
    if clients is not None:
        rooms = services.tenant_rooms
        accounts = services.tenant_accounts.accounts(
            broker, scope.tenant, wait=False, then=lambda: rooms.resend_clients(broker)
        )
        clients = scoped_clients(clients, accounts)
    return {
        "status": latest["status"],
        "stats": None,  # the broker's $SYS totals are not a tenant's
        "clients": clients,
        "topics": scoped_topics(topics, scope) if topics is not None else None,
    }


def register_events(services: Services) -> None:
    socketio = services.socketio
    routers = services.routers
    metrics = services.metrics
    prefix = services.settings.tenant_prefix

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        try:
            check, principal = services.auth.socket_login(auth, request.headers, request.remote_addr)
        except redis.RedisError:
            raise ConnectionRefusedError("the dashboard cannot reach Redis to check the login") from None
        if check is Check.BLOCKED:
            raise ConnectionRefusedError(TOO_MANY)
        if check is not Check.OK:
            raise ConnectionRefusedError("not logged in")
        # One socket watches one broker for its whole life: the page reconnects to switch, so
        # no frame of the old broker can arrive after the switch.
        broker = _broker_asked(auth)
        refusal = policy.decide(principal, policy.EVENT_RULES["connect"], broker, prefix)
        if refusal is not None:
            raise ConnectionRefusedError(refusal.message)
        services.relay.ensure_started()
        # Read before the socket is registered anywhere: should it fail, nothing is left behind
        # (a router kept for a socket that never connected would buffer for nobody for ever).
        first = snapshot(services, broker, principal)
        sid = _sid()
        services.socket_sessions.add(sid, services.auth.session_store_key(), principal)
        scope = policy.topic_scope(principal, prefix)
        if scope is None:
            routers.add_client(sid, broker, EVERYTHING)
            join_room(broker_room(broker))
            join_room(room_for(EVERYTHING, broker))
        else:
            routers.add_client(sid, broker, scope.filter)
            join_room(services.tenant_rooms.add(sid, broker, scope.tenant))
            join_room(room_for(scope.filter, broker))
        metrics.socket_clients.set(routers.client_count)
        emit("snapshot", first)

    @socketio.on("disconnect")
    def on_disconnect(*_reason: Any) -> None:
        services.socket_sessions.remove(_sid())
        services.tenant_rooms.remove(_sid())
        routers.remove_client(_sid())
        metrics.socket_clients.set(routers.client_count)

    @socketio.on("set_filter")
    def on_set_filter(data: Any = None) -> dict[str, Any]:
        if not isinstance(data, dict):
            return {"ok": False, "error": 'set_filter needs {"filter": "<MQTT topic filter>"}'}
        sid = _sid()
        scope = policy.topic_scope(services.socket_sessions.principal_of(sid), prefix)
        try:
            topic_filter = normalise_filter(data.get("filter"))
            if scope is not None:
                topic_filter = scope.narrow(topic_filter)
        except (InvalidCommand, OutOfScope) as exc:
            return {"ok": False, "error": str(exc)}
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
