"""The one table of every route and Socket.IO event, with who may use it: the least role, and
what a tenant user gets (``same``, ``scoped`` or ``closed``).

test_route_policy.py checks that it names exactly the app's routes and events and that the server
enforces it; test_tenant_scope.py walks it as a tenant user. A route added without a line here
fails both, on purpose: decide its rule in dashboard/policy.py and write it here too.
"""

from __future__ import annotations

from flask import Flask

from dashboard.extensions import services
from dashboard.policy import ADMIN, OPERATOR, VIEWER, route_key

SAME, SCOPED, CLOSED = "same", "scoped", "closed"

# "METHOD path" (per-broker routes under their /api twin) -> (least role or None for open, tenants)
ROUTES: dict[str, tuple[str | None, str]] = {
    "GET /": (None, SAME),
    "GET /<path:filename>": (None, SAME),
    "GET /health": (None, SAME),
    "GET /health/live": (None, SAME),
    "GET /api/session": (None, SAME),
    "POST /api/login": (None, SAME),
    "POST /api/logout": (None, SAME),
    "POST /api/session/password": (VIEWER, SAME),
    "GET /api/health": (VIEWER, CLOSED),
    "GET /api/brokers": (VIEWER, SCOPED),
    "GET /metrics": (VIEWER, CLOSED),
    "GET /api/broker/status": (VIEWER, SAME),
    "GET /api/broker/stats": (VIEWER, CLOSED),
    "GET /api/broker/stats/history": (VIEWER, CLOSED),
    "GET /api/clients": (VIEWER, SCOPED),
    "GET /api/topics": (VIEWER, SCOPED),
    "GET /api/messages": (VIEWER, SCOPED),
    "GET /api/export": (VIEWER, SCOPED),
    "GET /api/subscriptions": (VIEWER, SCOPED),
    "GET /api/publish/templates": (VIEWER, SCOPED),
    "GET /api/publish/history": (VIEWER, SCOPED),
    "GET /api/broker/connection": (VIEWER, CLOSED),
    "GET /api/broker/connection/history": (VIEWER, CLOSED),
    "GET /api/tenants": (VIEWER, CLOSED),
    "POST /api/publish": (OPERATOR, SCOPED),
    "POST /api/subscriptions": (OPERATOR, SCOPED),
    "DELETE /api/subscriptions/<topic_filter:topic_filter>": (OPERATOR, SCOPED),
    "POST /api/subscriptions/pause": (OPERATOR, SCOPED),
    "POST /api/subscriptions/resume": (OPERATOR, SCOPED),
    "POST /api/retained/clear": (OPERATOR, SCOPED),
    "POST /api/publish/templates": (OPERATOR, SCOPED),
    "PUT /api/publish/templates/<template_id>": (OPERATOR, SCOPED),
    "DELETE /api/publish/templates/<template_id>": (OPERATOR, SCOPED),
    "POST /api/publish/templates/<template_id>/run": (OPERATOR, SCOPED),
    "DELETE /api/publish/history": (OPERATOR, CLOSED),
    "POST /api/broker/connection/test": (ADMIN, CLOSED),
    "PUT /api/broker/connection": (ADMIN, CLOSED),
    "DELETE /api/broker/connection": (ADMIN, CLOSED),
    "POST /api/broker/reconnect": (ADMIN, CLOSED),
    "POST /api/tenants": (ADMIN, CLOSED),
    "DELETE /api/tenants/<name>": (ADMIN, CLOSED),
    "POST /api/tenants/<name>/accounts": (ADMIN, CLOSED),
    "POST /api/tenants/<name>/accounts/<username>/<action>": (ADMIN, CLOSED),
    "DELETE /api/tenants/<name>/accounts/<username>": (ADMIN, CLOSED),
    "GET /api/users": (ADMIN, CLOSED),
    "POST /api/users": (ADMIN, CLOSED),
    "PATCH /api/users/<username>": (ADMIN, CLOSED),
    "DELETE /api/users/<username>": (ADMIN, CLOSED),
    "GET /api/audit": (ADMIN, CLOSED),
}

# Socket.IO events (browser -> server)
EVENTS: dict[str, tuple[str | None, str]] = {
    "connect": (VIEWER, SCOPED),
    "disconnect": (None, SAME),
    "set_filter": (VIEWER, SCOPED),
}

# What the walks put in a URL's variables (the fixtures create what they name).
URL_VALUES = {
    "broker": "default",
    "topic_filter": "sensors%2Fa",
    "template_id": "tmpl-sensors",
    "name": "acme",
    "username": "target",
    "action": "disable",
    "filename": "favicon.ico",
}
# One body for every state-changing route: each takes the fields it knows (some refuse the rest
# with 400, which is still past the access check).
BODY = {
    "topic": "sensors/a",
    "filter": "sensors/#",
    "payload": "21.5",
    "name": "a-name",
    "username": "new-user",
    "password": "a long enough password",
    "role": VIEWER,
    "current_password": "correct horse battery",
    "new_password": "another long password",
}


def app_routes(app: Flask) -> dict[str, list[str]]:
    """Every route of the app as a table key -> the URL rules behind it (/api and per broker)."""
    found: dict[str, list[str]] = {}
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.setdefault(route_key(method, rule.rule), []).append(rule.rule)
    return found


def app_events(app: Flask) -> set[str]:
    return set(services(app).socketio.server.handlers.get("/", {}))


def url_for_rule(rule: str) -> str:
    """A concrete URL for a URL rule, its variables filled from URL_VALUES."""
    path = rule
    for name, value in URL_VALUES.items():
        for converter in ("", "topic_filter:", "path:"):
            path = path.replace(f"<{converter}{name}>", value)
    assert "<" not in path, f"no value for a variable in {rule}: add it to URL_VALUES"
    return path
