"""The routes outside /api: the page itself (and ``/?token=`` login), /health and /metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis
from flask import (
    Blueprint,
    Request,
    Response,
    current_app,
    jsonify,
    redirect,
    request,
    send_from_directory,
)

from bridge.contract.protocol import UNNAMED_BROKER
from dashboard.access import current_principal
from dashboard.audit import outcome_of
from dashboard.auth import Check
from dashboard.broker_context import current_broker
from dashboard.brokers import broker_loss
from dashboard.extensions import services
from dashboard.metrics import CONTENT_TYPE
from dashboard.policy import BOOTSTRAP
from dashboard.store import bridge_health

pages = Blueprint("pages", __name__)

STATIC_DIR = Path(__file__).with_name("static")

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MQTT dashboard</title></head>
<body>
<h1>The dashboard's frontend is not built</h1>
<p>The server is running (see <a href="/health">/health</a>), but
<code>dashboard/static/index.html</code> does not exist yet.</p>
<p>Build the Vue app from the project's root with <code>make frontend</code>, then reload this page.</p>
</body></html>
"""


@pages.get("/")
def index() -> Any:
    auth = services().auth
    token = request.args.get("token")
    if token is not None and auth.enabled:
        # Jupyter-style login link: trade the token for a session cookie, then drop it from
        # the address bar (and so from the browser's history) with a redirect.
        if not opened_by_the_user(request):
            # Any page can make a browser load /?token=x (an <img> will do). Checking it would
            # let that page lock the user's address out; not counting it would make it a free
            # guess. So it is neither checked nor counted.
            return redirect("/?login=unchecked", code=303)
        found = services()
        check = auth.authenticate([token], request.remote_addr)
        if check is Check.OK:
            auth.log_in()
        status = {Check.OK: 200, Check.BLOCKED: 429}.get(check, 401)
        found.audit.record(
            "login",
            BOOTSTRAP if check is Check.OK else None,
            outcome_of(status),
            user="(login link)",
            status=status,
            address=request.remote_addr,
        )
        return redirect("/" if check is Check.OK else "/?login=failed", code=303)
    static = Path(current_app.static_folder or STATIC_DIR)
    if (static / "index.html").is_file():
        response = send_from_directory(static, "index.html", max_age=0)
    else:
        response = Response(NOT_BUILT, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"  # a new build must reach browsers at once
    return response


def opened_by_the_user(request: Request) -> bool:
    """True when the browser says no other site caused this request.

    ``Sec-Fetch-Site: none`` is what a browser sends for an address typed or pasted, a bookmark,
    or a link opened from another program (the terminal that printed the login URL);
    ``same-origin`` for our own pages. A request without the header (an old browser, a script)
    cannot be told apart from one another site caused, so it does not qualify: scripts send
    ``Authorization: Bearer`` instead.
    """
    return request.headers.get("Sec-Fetch-Site") in ("none", "same-origin")


@pages.get("/health/live")
def live() -> tuple[Response, int]:
    """The worker answers HTTP: what a container healthcheck needs. /health says whether the
    whole pipeline works; a dashboard that reports a dead bridge is doing its job, not failing."""
    return jsonify({"status": "ok", "worker": os.getpid()}), 200


def health_report(only: str | None = None) -> tuple[dict[str, Any], bool]:
    """The whole chain's state (Redis, each expected bridge's heartbeat, its broker) and whether it
    is healthy: every broker the dashboard expects (DASHBOARD_BROKERS, else every bridge that ever
    registered, else the unnamed one) has a live bridge connected to its broker, and no broker is
    dropping messages. ``only``: that one broker's report (/api/brokers/<name>/health)."""
    found = services()
    redis_ok = found.store.ping()
    reports: dict[str, dict[str, Any]] = {}
    if redis_ok:
        try:
            names = [only] if only is not None else found.brokers.expected()
            reports = {name: found.brokers.health(name) for name in names}
        except redis.RedisError:
            redis_ok = False
    if not reports:
        names = [only] if only is not None else list(found.settings.brokers or [UNNAMED_BROKER])
        offline = {"connected": None, "broker": None}
        reports = {
            n: {"bridge": bridge_health(None, None), "broker": offline, "loss": broker_loss(None)}
            for n in names
        }
    healthy = redis_ok and all(
        r["bridge"]["online"] and r["broker"]["connected"] is True and not r["loss"]["dropping"]
        for r in reports.values()
    )
    # The top-level bridge and broker are the first expected broker's (the unnamed one in a
    # single-broker setup, exactly as before); with several, they say whether all are up.
    first = next(iter(reports.values()))
    bridge = dict(first["bridge"])
    broker = dict(first["broker"])
    if len(reports) > 1:
        bridge["online"] = all(r["bridge"]["online"] for r in reports.values())
        connected = [r["broker"]["connected"] for r in reports.values()]
        broker["connected"] = all(c is True for c in connected) if None not in connected else None
    broker["dropping"] = any(r["loss"]["dropping"] for r in reports.values())
    body = {
        "status": "ok" if healthy else "degraded",
        "problems": _problems(redis_ok, reports),
        "worker": os.getpid(),
        "redis": redis_ok,
        "bridge": bridge,
        "broker": broker,
        "brokers": {
            n: {"bridge": r["bridge"], "broker": r["broker"], "loss": r["loss"]} for n, r in reports.items()
        },
        "socket_clients": found.routers.client_count,
    }
    return body, healthy


def _problems(redis_ok: bool, reports: dict[str, dict[str, Any]]) -> list[str]:
    """Why the chain is degraded, one sentence per problem (empty when it is healthy)."""
    if not redis_ok:
        return [f"Redis at {services().settings.redis.where} is not reachable"]
    found = []
    for name, report in reports.items():
        bridge, loss = report["bridge"], report["loss"]
        if bridge.get("problem"):
            found.append(f"{name}: the bridge's heartbeat cannot be read: {bridge['problem']}")
        elif not bridge["online"]:
            found.append(f"{name}: the bridge is offline (no fresh heartbeat)")
        elif report["broker"]["connected"] is not True:
            found.append(f"{name}: the bridge is not connected to its broker")
        if loss["dropping"]:
            found.append(
                f"{name}: the broker is dropping messages ({loss['last_minute'] or 0:,} in the last "
                "minute): a subscriber's queue, perhaps the bridge's, is full; see docs/operations.md"
            )
    return found


@pages.get("/health")
def health() -> tuple[Response, int]:
    """For anyone, so only yes/no answers: the broker's address, pids, versions and counters
    would tell a stranger what runs here. The details are at /api/health, behind the login."""
    body, healthy = health_report()
    terse = {
        "status": body["status"],
        "worker": body["worker"],
        "redis": body["redis"],
        "bridge": {"online": body["bridge"]["online"], **_leader_flag(body["bridge"])},
        "broker": {"connected": body["broker"]["connected"], "dropping": body["broker"]["dropping"]},
        # per broker, the same yes/no answers (the names are the operators' own labels)
        "brokers": {
            name: {
                "online": b["bridge"]["online"],
                "connected": b["broker"]["connected"],
                "dropping": b["loss"]["dropping"],
            }
            for name, b in body["brokers"].items()
        },
    }
    return jsonify(terse), 200 if healthy else 503


def _leader_flag(bridge: dict[str, Any]) -> dict[str, bool]:
    """A bridge group: whether a leader is alive (its heartbeat is the group's), and nothing more."""
    group = bridge.get("group")
    if not isinstance(group, dict):
        return {}
    return {"leader": bool(bridge["online"] and group.get("leader"))}


@pages.get("/api/health")
def health_details() -> tuple[Response, int]:
    """/health with the details (login required, like the rest of /api)."""
    body, healthy = health_report()
    return jsonify(body), 200 if healthy else 503


@pages.get("/api/brokers/<broker>/health")
def broker_health() -> tuple[Response, int]:
    """One broker's /health details (login required; broker_context checked the name)."""
    body, healthy = health_report(only=current_broker())
    return jsonify(body), 200 if healthy else 503


@pages.get("/api/brokers")
def brokers_overview() -> Response:
    """The broker switcher's list and the "all brokers" overview (login required). A user held
    to one broker sees that one only; a tenant user only whether it is up (its rates and client
    counts are the broker's, not the tenant's)."""
    found = services()
    rows, expected = found.brokers.overview(), found.brokers.expected()
    principal = current_principal()
    if principal is not None and principal.broker is not None:
        rows = [row for row in rows if row["name"] == principal.broker]
        expected = [name for name in expected if name == principal.broker]
    if principal is not None and principal.tenant is not None:
        rows = [{key: row[key] for key in ("name", "online", "connected", "expected")} for row in rows]
    return jsonify(brokers=rows, expected=expected)


@pages.get("/metrics")
def metrics() -> Response:
    found = services()
    found.metrics.socket_clients.set(found.routers.client_count)
    return Response(found.metrics.render(), content_type=CONTENT_TYPE)
