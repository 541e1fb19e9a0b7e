"""Where dashboard/policy.py is enforced: before every request (login, role, broker, tenant, then
the CSRF rule), around every Socket.IO event, and after every state-changing request (the audit
trail). Views only narrow their data with ``current_scope()``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, jsonify, request

from bridge.contract.protocol import CMD_PUBLISH, FILTER_COMMANDS
from dashboard import policy
from dashboard.auth import STATE_CHANGING, TOO_MANY, Check, csrf_exempt, same_origin
from dashboard.broker_context import current_broker
from dashboard.extensions import Services, services
from dashboard.policy import EVENT_RULES, UNRULED, OutOfScope, Principal, Rule, TopicScope

logger = logging.getLogger(__name__)

# A preflight says only which methods a route takes; it needs a login, no particular role.
_OPTIONS = Rule(policy.VIEWER, "asking which methods a route takes", policy.Tenancy.SAME, per_broker=False)


def request_rule() -> Rule | None:
    """The rule of the route this request matched (None when it matched none: a 404 or 405)."""
    if request.url_rule is None:
        return None
    if request.method == "OPTIONS":
        return _OPTIONS
    return policy.rule_for(request.method, request.url_rule.rule)


def current_principal() -> Principal | None:
    found: Principal | None = g.get("acting")
    return found


def current_scope() -> TopicScope | None:
    """The topics this request may touch: a tenant user's, or None for no limit."""
    return policy.topic_scope(current_principal(), services().settings.tenant_prefix)


def principal_view(principal: Principal, prefix: str) -> dict[str, Any]:
    """Who is logged in, as /api/session and the socket's snapshot tell the page."""
    scope = policy.topic_scope(principal, prefix)
    return {
        "name": principal.name,
        "role": principal.role,
        "tenant": principal.tenant,
        "broker": principal.broker,
        "topic": scope.filter if scope else None,
        "named": principal.named,
    }


# What a tenant user's command does to a filter, for the refusal's words.
_DOING = {
    "cmd_subscribe": "subscribe",
    "cmd_unsubscribe": "unsubscribe",
    "cmd_pause_subscription": "pause subscriptions",
    "cmd_resume_subscription": "resume subscriptions",
    "cmd_clear_retained": "clear retained messages",
}


def check_command_scope(body: dict[str, Any]) -> None:
    """Every command the dashboard sends for a tenant user stays inside the tenant's topics:
    a publish to one of them, a filter command on a filter inside them, nothing else."""
    scope = current_scope()
    if scope is None:
        return
    kind = body.get("type")
    if kind == CMD_PUBLISH:
        scope.check_topic(body.get("topic"), "publish")
    elif kind in FILTER_COMMANDS:
        scope.check_filter(body.get("topic"), _DOING.get(str(kind), "act"))
    else:
        raise OutOfScope(f"tenant users cannot send {kind}")


def error(message: str, status: int) -> tuple[Response, int]:
    return jsonify(error=message), status


def register_access(app: Flask, found: Services) -> None:
    auth = found.auth

    @app.before_request
    def check_access() -> Any:
        rule = request_rule()
        if rule is None:
            return None  # Flask answers 404/405; nothing ran
        g.access_rule = rule
        principal = None
        if rule.role is not None or rule.audit is not None:  # logout: the trail says who
            check = auth.request_check(request)
            if check is Check.BLOCKED and rule.role is not None:
                return error(TOO_MANY, 429)
            principal = auth.principal(request)
        g.acting = principal
        refusal = policy.decide(principal, rule, current_broker(), found.settings.tenant_prefix)
        if refusal is not None:
            return error(refusal.message, refusal.status)
        if not csrf_exempt(request, auth) and not same_origin(request):
            if auth.request_check(request) is Check.BLOCKED:  # a Bearer guess on /api/login etc.
                return error(TOO_MANY, 429)
            return error("cross-origin request refused: Origin (or Referer) must match this host", 403)
        return None

    @app.after_request
    def audit_trail(response: Response) -> Response:
        rule: Rule | None = g.get("access_rule")
        if rule is None or request.method not in STATE_CHANGING:
            return response
        if rule.audit is None and rule is not UNRULED:
            return response
        try:
            found.audit.record_request(rule, current_principal(), response)
        except Exception:  # the action has happened; a trail that cannot be written must not hide it
            logger.exception("could not write %s %s to the audit trail", request.method, request.path)
        return response


def guard_events(found: Services) -> None:
    """Wrap every Socket.IO event handler (but connect and disconnect, which log in and out) with
    its EVENT_RULES rule. Called once all handlers are registered."""
    handlers: dict[str, Callable[..., Any]] = found.socketio.server.handlers.get("/", {})
    for name, handler in list(handlers.items()):
        if name in ("connect", "disconnect") or getattr(handler, "policy_guarded", False):
            continue
        handlers[name] = _guarded(found, name, handler)


def _guarded(found: Services, name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    rule = EVENT_RULES.get(name, UNRULED)

    @functools.wraps(handler)
    def checked(sid: str, *args: Any) -> Any:
        principal = found.socket_sessions.principal_of(sid)
        broker = found.routers.broker_of(sid)
        refusal = policy.decide(principal, rule, broker, found.settings.tenant_prefix)
        if refusal is not None:
            return {"ok": False, "error": refusal.message}
        return handler(sid, *args)

    checked.policy_guarded = True  # type: ignore[attr-defined]
    return checked
