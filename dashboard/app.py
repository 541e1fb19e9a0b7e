"""The app factory: wires settings, Redis, Socket.IO, the relay, routes, guards and errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import redis
from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from redis.exceptions import RedisClusterException
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from bridge.contract.protocol import KEY_USER_LOGIN_FAILURES_PREFIX
from bridge.contract.secret_box import SecretBox
from dashboard.access import guard_events, register_access
from dashboard.api import TopicFilterConverter, api, error
from dashboard.audit import AuditLog
from dashboard.audit_api import audit_api
from dashboard.auth import Authenticator
from dashboard.broker_api import broker_api
from dashboard.broker_context import BROKER_PREFIX, register_broker_context
from dashboard.brokers import Brokers
from dashboard.config import DashboardSettings
from dashboard.events import register_events
from dashboard.extensions import EXTENSION, Services, make_redis, make_socketio
from dashboard.frames import BrokerRouters, FrameRouter
from dashboard.front_door import AllowedHosts, TrustedProxies, WholeWebSocketWrites
from dashboard.host_rules import HostRule
from dashboard.login_guard import LoginGuard
from dashboard.metrics import DashboardMetrics
from dashboard.pages import STATIC_DIR, pages
from dashboard.passwords import PasswordHasher
from dashboard.policy import OutOfScope
from dashboard.relay import Relay
from dashboard.sessions import SessionStore, SocketSessions
from dashboard.stats_api import stats_api
from dashboard.store import Store
from dashboard.templates_api import templates_api
from dashboard.tenant_accounts import TenantAccounts
from dashboard.tenant_rooms import TenantRooms
from dashboard.tenants_api import tenants_api
from dashboard.users import UserStore
from dashboard.users_api import users_api

logger = logging.getLogger(__name__)


# The built frontend is one module script and one stylesheet from /assets; nothing inline, so an
# injected <script> or on*= attribute cannot run. Vue and uPlot set styles through the CSSOM,
# which style-src does not govern. 'self' in connect-src covers the same-origin WebSocket.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # the favicon is a data: URL
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def create_app(
    settings: DashboardSettings | None = None,
    *,
    redis_client: redis.Redis | None = None,
    start_relay: bool = True,
    static_dir: Path | None = None,
    password_hasher: PasswordHasher | None = None,
) -> Flask:
    """Build the app. Tests pass a fakeredis client and ``start_relay=False``, then drive
    the relay's steps themselves; ``static_dir`` replaces the built frontend's folder;
    ``password_hasher`` a cheaper one than users' passwords get."""
    settings = settings or DashboardSettings.from_env()
    app = Flask(__name__, static_folder=str(static_dir or STATIC_DIR), static_url_path="")
    app.config.update(
        # The same key in every worker (derived from configuration), or a login made on one
        # worker would be unknown to the next.
        SECRET_KEY=settings.session_key,
        SESSION_COOKIE_NAME="mqtt_dashboard_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        # The cookie lives as long as the server-side session may (each use extends both).
        PERMANENT_SESSION_LIFETIME=settings.session_ttl,
        MAX_CONTENT_LENGTH=settings.max_body,
    )
    # Topic filters travel in URLs (DELETE /api/subscriptions/<filter>); "a//b" and "/a" are
    # valid filters that must not be rewritten.
    app.url_map.merge_slashes = False
    app.url_map.converters["topic_filter"] = TopicFilterConverter
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the contract's field order
    app.session_interface = SessionCookies()

    if not settings.auth_enabled:
        logger.warning("DASHBOARD_AUTH is off: anyone who can reach this port can read and publish")

    client = redis_client if redis_client is not None else make_redis(settings)
    guard = LoginGuard(client)
    users = UserStore(client, password_hasher)
    auth = Authenticator(
        settings,
        guard,
        SessionStore(client, settings.credentials_fingerprint, settings.session_ttl),
        users,
        user_guard=LoginGuard(client, prefix=KEY_USER_LOGIN_FAILURES_PREFIX),
    )
    socketio = make_socketio(app, settings)
    tenant_accounts = TenantAccounts(client, spawn=socketio.start_background_task)
    tenant_rooms = TenantRooms(socketio, tenant_accounts, settings.tenant_prefix)
    # One frame never holds more than a client may have queued, or one frame could exceed it.
    router = FrameRouter(settings.frame_max, settings.client_buffer)
    metrics = DashboardMetrics()
    routers = BrokerRouters(router)
    relay = Relay(
        socketio,
        client,
        router,
        metrics,
        frame_interval=settings.frame_interval,
        where=settings.redis.where,
        enabled=start_relay,
        client_buffer=settings.client_buffer,
        routers=routers,
        tenant_rooms=tenant_rooms,
    )
    socket_sessions = SocketSessions()

    def close_sockets_of(session_key: str) -> None:
        # A logout on any worker: this worker's sockets opened with that session end too.
        for sid in socket_sessions.sids_of(session_key):
            socketio.server.disconnect(sid, namespace="/")

    def close_sockets_of_user(username: str) -> None:
        # A user changed, disabled or deleted on any worker: their sockets here end too.
        for sid in socket_sessions.sids_of_user(username):
            socketio.server.disconnect(sid, namespace="/")

    relay.on_session_revoked = close_sockets_of
    relay.on_user_revoked = close_sockets_of_user
    found = Services(
        settings=settings,
        redis=client,
        store=Store(client),
        socketio=socketio,
        auth=auth,
        metrics=metrics,
        router=router,
        relay=relay,
        login_guard=guard,
        socket_sessions=socket_sessions,
        secret_box=SecretBox.from_setting(settings.config_secret_key),
        brokers=Brokers(client, settings.brokers),
        routers=routers,
        users=users,
        audit=AuditLog(client),
        tenant_accounts=tenant_accounts,
        tenant_rooms=tenant_rooms,
    )
    app.extensions[EXTENSION] = found
    register_events(found)
    guard_events(found)  # after every handler is registered
    # Each API twice: as it always was (the unnamed broker) and per broker under /api/brokers/<name>.
    register_broker_context(app)
    app.register_blueprint(api)
    app.register_blueprint(api, url_prefix=BROKER_PREFIX, name="broker_api")
    app.register_blueprint(pages)
    app.register_blueprint(stats_api)
    app.register_blueprint(stats_api, url_prefix=BROKER_PREFIX, name="broker_stats_api")
    app.register_blueprint(templates_api)
    app.register_blueprint(broker_api)
    app.register_blueprint(tenants_api)
    app.register_blueprint(broker_api, url_prefix=BROKER_PREFIX + "/broker", name="broker_broker_control")
    app.register_blueprint(tenants_api, url_prefix=BROKER_PREFIX + "/tenants", name="broker_tenants_api")
    app.register_blueprint(templates_api, url_prefix=BROKER_PREFIX + "/publish", name="broker_templates_api")
    app.register_blueprint(users_api)
    app.register_blueprint(audit_api)
    register_access(app, found)
    _register_headers(app)
    _register_errors(app, found)
    # Outermost, so that Socket.IO's requests pass them too (see front_door.py).
    app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
        AllowedHosts(WholeWebSocketWrites(app.wsgi_app), HostRule(settings.allowed_hosts)),
        settings.trusted_proxies,
    )
    return app


class SessionCookies(SecureCookieSessionInterface):
    """The session cookie gets ``Secure`` whenever the page was served over https (directly, or
    by a trusted proxy that says so with X-Forwarded-Proto)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or bool(app.config["SESSION_COOKIE_SECURE"])


def _register_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")  # frame-ancestors for older browsers
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        # Never send our URLs (which may carry ?token=) to other sites.
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def _register_errors(app: Flask, found: Services) -> None:
    @app.errorhandler(OutOfScope)
    def out_of_scope(exc: OutOfScope) -> Any:
        return error(str(exc), 403)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: RequestEntityTooLarge) -> Any:
        return error(f"the request body is larger than the limit of {found.settings.max_body:,} bytes", 413)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if status == 404:
            return error(f"not found: {request.path}", 404)
        if status == 405:
            return error(f"{request.method} is not allowed on {request.path}", 405)
        return error(exc.description or exc.name, status)

    @app.errorhandler(redis.RedisError)
    @app.errorhandler(RedisClusterException)  # a cluster with no node reachable (not a RedisError)
    def redis_down(exc: Exception) -> Any:
        logger.warning(
            "Redis at %s failed during %s %s: %s",
            found.settings.redis.where,
            request.method,
            request.path,
            exc,
        )
        return error(f"Redis at {found.settings.redis.where} is not reachable", 503)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Any:
        logger.exception("unexpected error in %s %s", request.method, request.path)
        return error("internal server error (details are in the dashboard's log)", 500)
