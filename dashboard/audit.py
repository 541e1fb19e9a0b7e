"""The audit trail: who did what, when, from where, and how it ended, in one Redis stream
(``KEY_AUDIT``) trimmed to about AUDIT_MAXLEN entries, shared by every worker.

Every state-changing request is written (dashboard/access.py), logins and refusals included, and
the command line's user changes. What is kept of a request is a fixed list of harmless fields of
its body (topic, filter, role, host, …): never a password, token or payload (a payload's size
only), so the trail can be shown and exported as it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from flask import Response, g, request

from bridge.contract.protocol import HISTORY_FIELD, KEY_AUDIT, dumps
from dashboard.broker_context import current_broker
from dashboard.policy import Principal, Rule, route_key
from dashboard.store import Entry, history_message

AUDIT_MAXLEN = 10_000
OK, DENIED, FAILED = "ok", "denied", "failed"
# Body fields worth keeping, none of them secret. A password is recorded as given or not.
SAFE_FIELDS = (
    "topic",
    "filter",
    "qos",
    "retain",
    "encoding",
    "name",
    "username",
    "role",
    "tenant",
    "broker",
    "disabled",
    "host",
    "port",
    "protocol",
    "tls",
    "tls_insecure",
    "keepalive",
    "reset",
)
PASSWORD_GIVEN = "(given)"  # noqa: S105 - what the trail says instead of a password
_TEXT_MAX = 300  # characters of one field or error kept; the rest is cut
_SCAN_MAX = AUDIT_MAXLEN * 2  # a filtered read never walks more than the whole trail
COMMAND_LINE = Principal("(command line)", "admin", named=False)


def outcome_of(status: int) -> str:
    if status < 400:
        return OK
    return DENIED if status in (401, 403, 429) else FAILED


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _TEXT_MAX:
        return value[:_TEXT_MAX] + "…"
    return value


def safe_detail(body: Any, view_args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a request's body and URL said, minus anything secret."""
    detail: dict[str, Any] = {}
    for name, value in (view_args or {}).items():
        if name != "broker":
            detail[name] = _short(value)
    if isinstance(body, dict):
        for name in SAFE_FIELDS:
            if name in body and (body[name] is None or isinstance(body[name], str | int | float | bool)):
                detail[name] = _short(body[name])
        if "password" in body:
            detail["password"] = PASSWORD_GIVEN if body["password"] else "(none)"
        if isinstance(body.get("payload"), str):
            detail["payload_chars"] = len(body["payload"])
    return detail


@dataclass(frozen=True)
class AuditQuery:
    user: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: float | None = None
    until: float | None = None

    def wants(self, entry: dict[str, Any]) -> bool:
        stamp = entry.get("timestamp")
        stamp = stamp if isinstance(stamp, int | float) else 0.0
        return (
            (self.user is None or entry.get("user") == self.user)
            and (self.action is None or entry.get("action") == self.action)
            and (self.outcome is None or entry.get("outcome") == self.outcome)
            and (self.since is None or stamp >= self.since)
            and (self.until is None or stamp <= self.until)
        )


class AuditLog:
    def __init__(self, client: redis.Redis, maxlen: int = AUDIT_MAXLEN):
        self.redis = client
        self.maxlen = maxlen

    def record(
        self,
        action: str,
        who: Principal | None,
        outcome: str,
        *,
        user: str | None = None,
        status: int | None = None,
        broker: str | None = None,
        address: str | None = None,
        detail: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        entry = {
            "timestamp": time.time(),
            "user": who.name if who is not None else _short(user),
            "role": who.role if who is not None else None,
            "tenant": who.tenant if who is not None else None,
            "action": action,
            "outcome": outcome,
            "status": status,
            "broker": broker,
            "address": address,
            "detail": dict(detail or {}),
            "error": _short(error),
        }
        self.redis.xadd(KEY_AUDIT, {HISTORY_FIELD: dumps(entry)}, maxlen=self.maxlen, approximate=True)

    def record_request(self, rule: Rule, principal: Principal | None, response: Response) -> None:
        """One state-changing request, after its answer (dashboard/access.py)."""
        action = rule.audit or route_key(request.method, request.url_rule.rule if request.url_rule else "")
        body = request.get_json(silent=True, force=True) if request.content_length else None
        status = response.status_code
        attempted = None
        if action == "login":
            # Who logged in (set by the login), or the name that was tried; never the password.
            principal = g.get("_principal") if status < 400 else None
            attempted = body.get("username") if isinstance(body, dict) else None
            attempted = attempted if isinstance(attempted, str) and attempted else "(token or password)"
            body = {"username": attempted} if isinstance(body, dict) and "username" in body else None
        elif principal is None and status in (401, 403):
            return  # nobody logged in: noise from strangers, not an act of anyone's
        answer = response.get_json(silent=True) if response.is_json else None
        error = answer.get("error") if isinstance(answer, dict) and status >= 400 else None
        self.record(
            action,
            principal,
            outcome_of(status),
            user=attempted,
            status=status,
            broker=current_broker() if rule.per_broker else None,
            address=request.remote_addr,
            detail=safe_detail(body, request.view_args),
            error=error if isinstance(error, str) else None,
        )

    # --- reading ---------------------------------------------------------------------------------
    def page(
        self, query: AuditQuery, limit: int, before: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first, strictly older than ``before``; (entries, next_before)."""
        found: list[dict[str, Any]] = []
        for scanned, (entry_id, entry) in enumerate(self._backwards(before), start=1):
            if entry is not None and query.wants(entry):
                found.append(entry)
                if len(found) >= limit:
                    return found, entry_id
            if scanned >= _SCAN_MAX:
                return found, entry_id
        return found, None

    def export(self, query: AuditQuery, limit: int) -> Iterator[dict[str, Any]]:
        """Oldest first, every matching entry up to ``limit``."""
        newest_first, _ = self.page(query, limit, None)
        return reversed(newest_first)

    def _backwards(self, before: str | None) -> Iterator[tuple[str, dict[str, Any] | None]]:
        upper = "+" if before is None else "(" + before
        while True:
            raw: Any = self.redis.xrevrange(KEY_AUDIT, max=upper, count=500)
            chunk: list[Entry] = list(raw or [])
            for entry_id, fields in chunk:
                yield entry_id, history_message(entry_id, fields)
            if len(chunk) < 500:
                return
            upper = "(" + chunk[-1][0]
