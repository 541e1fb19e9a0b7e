"""The per-app objects (Redis client, Socket.IO server, relay, metrics) and how to reach them.

Everything hangs off ``app.extensions`` rather than module globals, so tests can build as
many apps as they like, each over its own fakeredis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from flask import Flask, current_app
from flask_socketio import SocketIO

from bridge.contract import redis_topology
from bridge.contract.secret_box import SecretBox
from bridge.contract.server_versions import RedisVersionCheck
from dashboard.auth import Authenticator
from dashboard.brokers import Brokers
from dashboard.config import DashboardSettings
from dashboard.frames import BrokerRouters, FrameRouter
from dashboard.front_door import same_origin_socket
from dashboard.login_guard import LoginGuard
from dashboard.metrics import DashboardMetrics
from dashboard.sessions import SocketSessions
from dashboard.store import Store
from dashboard.tenant_accounts import TenantAccounts
from dashboard.users import UserStore

if TYPE_CHECKING:
    from dashboard.audit import AuditLog
    from dashboard.relay import Relay
    from dashboard.tenant_rooms import TenantRooms

EXTENSION = "mqtt_dashboard"
# The pub/sub connection must notice a silently dead Redis; redis-py pings it when idle this long.
HEALTH_CHECK_INTERVAL = 10

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: DashboardSettings
    redis: redis.Redis
    store: Store
    socketio: SocketIO
    auth: Authenticator
    metrics: DashboardMetrics
    router: FrameRouter
    relay: Relay
    login_guard: LoginGuard
    socket_sessions: SocketSessions
    brokers: Brokers
    routers: BrokerRouters
    users: UserStore
    audit: AuditLog
    tenant_accounts: TenantAccounts
    tenant_rooms: TenantRooms
    # CONFIG_SECRET_KEY's box: seals passwords before they go to the bridge; None without a key
    secret_box: SecretBox | None = None


def services(app: Flask | None = None) -> Services:
    """This app's services (the current app's when none is given)."""
    found: Services = (app or current_app).extensions[EXTENSION]
    return found


def _log_refusal(refusal: str) -> None:
    logger.error("%s", refusal)


def make_redis(settings: DashboardSettings) -> redis.Redis:
    """The worker's Redis client; strings in and out, since every value is JSON text."""
    client: redis.Redis = redis_topology.connect(
        settings.redis,
        # Every new connection checks the server's version; gunicorn.conf.py acts on a refusal.
        RedisVersionCheck("mqtt-dashboard", on_refused=_log_refusal),
        decode_responses=True,
        # Anyone with Redis access can publish bytes that are not UTF-8 on the bridge's channels;
        # replace them rather than fail the relay, a snapshot or a REST call over one message.
        encoding_errors="replace",
        socket_connect_timeout=5,
        socket_timeout=10,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_INTERVAL,
    )
    return client


def make_socketio(app: Flask, settings: DashboardSettings) -> SocketIO:
    return SocketIO(
        app,
        # Explicit: under Gunicorn -k gevent; auto-detection could pick threading in a test.
        async_mode="gevent",
        # WebSocket only: no long-polling, so no sticky sessions across workers.
        transports=["websocket"],
        # No message_queue on purpose: each worker's relay emits to its own clients only,
        # which is what makes delivery exactly once per client.
        max_http_buffer_size=settings.max_body,
        # The REST rule (Origin names the Host asked for) instead of Engine.IO's scheme+host.
        cors_allowed_origins=same_origin_socket,
        logger=False,
        engineio_logger=False,
    )
