"""The REST API under /api (docs/dashboard-api.md): reads from Redis, commands to the bridge."""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request
from werkzeug.routing import PathConverter

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import (
    CMD_CLEAR_RETAINED,
    CMD_PAUSE_SUBSCRIPTION,
    CMD_PUBLISH,
    CMD_RESUME_SUBSCRIPTION,
    CMD_SUBSCRIBE,
    CMD_UNSUBSCRIBE,
    OUTCOME_UNKNOWN,
    dumps,
    validate_topic_filter,
)
from dashboard.access import check_command_scope, current_scope, principal_view
from dashboard.auth import TOO_MANY, TOO_MANY_FOR_USER, Check
from dashboard.broker_context import current_broker, current_names, current_store
from dashboard.commands import NoAnswer, build_command, round_trip
from dashboard.extensions import services
from dashboard.store import STREAM_ID
from dashboard.tenant_view import scoped_clients, scoped_subscriptions, scoped_topics

logger = logging.getLogger(__name__)

api = Blueprint("api", __name__, url_prefix="/api")

CLEAR_WAIT = 12.0  # bridge/retained.py: at most 500 clears at 100 a second, each acknowledged
EXPORT_DEFAULT = 10_000
EXPORT_MAX = 1_000_000
CSV_COLUMNS = ("id", "timestamp", "topic", "qos", "retain", "encoding", "payload")
EXPORT_INCOMPLETE = "export_incomplete"  # the last record of an export that Redis cut short


class TopicFilterConverter(PathConverter):
    """The rest of the path, as is: unlike ``path`` it may start with "/" (a valid filter)."""

    regex = ".+"
    part_isolating = False  # spans "/" (Werkzeug would otherwise infer True from the regex)


class BadRequest(Exception):
    """Input the API refuses with 400; the message is the ``error`` shown to the user."""


def error(message: str, status: int) -> tuple[Response, int]:
    return jsonify(error=message), status


# --- session ------------------------------------------------------------------------------------
@api.get("/session")
def session_state() -> Response:
    found = services()
    principal = found.auth.principal(request)
    body: dict[str, Any] = {
        "authenticated": principal is not None,
        "auth": found.auth.mode,
        "users": found.users.any(),  # which login form to offer first
    }
    if principal is not None:
        body["user"] = principal_view(principal, found.settings.tenant_prefix)
    return jsonify(body)


@api.post("/login")
def login() -> Any:
    """``{"username", "password"}`` for a named user; ``{"token"}`` or ``{"password"}`` alone for
    the bootstrap admin (DASHBOARD_TOKEN / DASHBOARD_PASSWORD)."""
    found = services()
    auth = found.auth
    if not auth.enabled:
        return jsonify(authenticated=True)
    body = json_object()
    user = None
    if "username" in body:
        check, user = auth.authenticate_user(body.get("username"), body.get("password"), request.remote_addr)
    else:
        check = auth.authenticate([body.get("token"), body.get("password")], request.remote_addr)
    if check is Check.BLOCKED:
        blocked_user = "username" in body and not auth.guard.blocked(request.remote_addr)
        return error(TOO_MANY_FOR_USER if blocked_user else TOO_MANY, 429)
    if check is Check.OK:
        auth.log_in(user)
        principal = auth.principal(request)
        view = principal_view(principal, found.settings.tenant_prefix) if principal else None
        return jsonify(authenticated=True, user=view)
    return error("wrong user name or password" if "username" in body else "wrong token or password", 401)


@api.post("/logout")
def logout() -> Response:
    services().auth.log_out()
    return jsonify(authenticated=False)


# --- the bridge's latest state ------------------------------------------------------------------
def _latest(name: str, what: str) -> Any:
    message = current_store().latest(name)
    if message is None:
        return error(f"no {what} yet: the bridge has not published any", 503)
    return jsonify(message)


@api.get("/broker/status")
def broker_status() -> Any:
    return _latest("status", "broker status")


@api.get("/broker/stats")
def broker_stats() -> Any:
    return _latest("stats", "broker statistics")


@api.get("/clients")
def clients() -> Any:
    scope = current_scope()
    if scope is None:
        return _latest("clients", "client list")
    message = current_store().latest("clients")
    if message is None:
        return error("no client list yet: the bridge has not published any", 503)
    accounts = services().tenant_accounts.accounts(current_broker(), scope.tenant, wait=True)
    return jsonify(scoped_clients(message, accounts))


@api.get("/topics")
def topics() -> Any:
    scope = current_scope()
    if scope is None:
        return _latest("topics", "topic list")
    message = current_store().latest("topics")
    if message is None:
        return error("no topic list yet: the bridge has not published any", 503)
    return jsonify(scoped_topics(message, scope))


# --- history ------------------------------------------------------------------------------------
@api.get("/messages")
def messages() -> Response:
    topic_filter = _topic_filter_arg()
    limit = int_arg("limit", 100, 1, 1000)
    before = request.args.get("before") or None
    if before is not None and not stream_id_ok(before):
        raise BadRequest("before must be a stream id such as 1718000000000-0 (use next_before)")
    found, next_before = current_store().page(topic_filter, limit, before)
    return jsonify(messages=found, next_before=next_before)


@api.get("/export")
def export() -> Response:
    topic_filter = _topic_filter_arg()
    limit = int_arg("limit", EXPORT_DEFAULT, 1, EXPORT_MAX)
    kind = request.args.get("format", "ndjson")
    if kind not in ("ndjson", "csv"):
        raise BadRequest("format must be ndjson or csv")
    found = services()
    rows = _until_redis_fails(current_store().export(topic_filter, limit), found.settings.redis.where)
    body = _csv_lines(rows) if kind == "csv" else (dumps(m) + "\n" for m in rows)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    mimetype = "text/csv" if kind == "csv" else "application/x-ndjson"
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="mqtt-history-{stamp}.{kind}"'},
    )


def _until_redis_fails(rows: Iterator[dict[str, Any]], where: str) -> Iterator[dict[str, Any]]:
    """The export's rows; if Redis fails part-way, one last ``export_incomplete`` record.

    By then the 200 and the first rows are on their way, so the status cannot say it any more:
    the file itself must, or a cut-off download would look like a complete one.
    """
    sent = 0
    try:
        for row in rows:
            yield row
            sent += 1
    except redis.RedisError as exc:
        logger.warning("export stopped after %d messages: Redis at %s failed (%s)", sent, where, exc)
        yield {
            "type": EXPORT_INCOMPLETE,
            "timestamp": time.time(),
            "exported": sent,
            "error": f"incomplete: Redis at {where} failed after {sent} messages; export again",
        }


def csv_cell(value: Any) -> Any:
    """A value for a spreadsheet: text starting with = + - @ (or a tab/CR) would run as a formula
    when the file is opened, so it is prefixed with an apostrophe, as OWASP advises."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    """-5 and +1.5e3 are readings, not formulas: they stay as they are."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        if row.get("type") == EXPORT_INCOMPLETE:
            # id INCOMPLETE, and the reason where the payload goes: visible in any spreadsheet
            writer.writerow(["INCOMPLETE", row["timestamp"], "", "", "", "", row["error"]])
            continue
        writer.writerow([csv_cell(row.get(column)) for column in CSV_COLUMNS])
        if buffer.tell() > 64 * 1024:  # send in chunks of tens of kilobytes, not line by line
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- commands -----------------------------------------------------------------------------------
@api.get("/subscriptions")
def subscriptions() -> Response:
    return jsonify(subscriptions=scoped_subscriptions(current_store().subscriptions(), current_scope()))


@api.post("/subscriptions")
def subscribe() -> Any:
    return _command(CMD_SUBSCRIBE, json_object(), topic_field="filter")


@api.post("/subscriptions/pause")
def pause_subscription() -> Any:
    return _command(CMD_PAUSE_SUBSCRIPTION, json_object(), topic_field="filter")


@api.post("/subscriptions/resume")
def resume_subscription() -> Any:
    return _command(CMD_RESUME_SUBSCRIPTION, json_object(), topic_field="filter")


@api.delete("/subscriptions/<topic_filter:topic_filter>")
def unsubscribe(topic_filter: str) -> Any:
    scope = current_scope()
    if scope is not None:
        scope.check_filter(topic_filter, "unsubscribe")
    if current_store().is_config_only(topic_filter):
        raise BadRequest(
            f"{topic_filter!r} is configured with MQTT_TOPICS on the bridge and cannot be removed here"
        )
    return _command(CMD_UNSUBSCRIBE, {"filter": topic_filter}, topic_field="filter")


@api.post("/retained/clear")
def clear_retained() -> Any:
    """Clear the retained message of a topic, or those the bridge knows under a filter (paced:
    up to 500 at 100 a second, so the wait is longer than for other commands)."""
    return send_command(build_command(CMD_CLEAR_RETAINED, json_object(), "filter"), timeout=CLEAR_WAIT)


@api.post("/publish")
def publish() -> Any:
    return _command(CMD_PUBLISH, json_object(), topic_field="topic")


def _command(kind: str, fields: dict[str, Any], topic_field: str) -> Any:
    # InvalidCommand -> 400 with the bridge's words
    return send_command(build_command(kind, fields, topic_field))


def send_command(body: dict[str, Any], timeout: float | None = None) -> Any:
    """The HTTP answer to one command: the bridge's ``command_result`` (200; 400 when it refused;
    504 when its outcome is unknown: it may have happened, the answer's ``error`` says why), or 504
    when the bridge did not answer within ``timeout`` (DASHBOARD_COMMAND_TIMEOUT)."""
    found = services()
    kind = body["type"]
    check_command_scope(body)  # a tenant user's command stays inside the tenant's topics
    try:
        result = round_trip(
            found.redis,
            body,
            found.settings.command_timeout if timeout is None else timeout,
            current_names(),
        )
    except NoAnswer as exc:
        found.metrics.commands.labels("no_answer").inc()
        logger.warning("%s %s: %s", kind, body["id"], exc)
        return error(str(exc), 504)
    if result.get("ok") is True:
        found.metrics.commands.labels("ok").inc()
        return jsonify(result)
    return failed_answer(result)


def failed_answer(result: dict[str, Any]) -> tuple[Response, int]:
    """A ``command_result`` with ``ok: false`` as the HTTP answer: 400 for a refusal, 504 when the
    outcome is unknown (a publish sent but never acknowledged may still arrive: not an error the
    user may simply retry)."""
    found = services()
    if result.get("outcome") == OUTCOME_UNKNOWN:
        found.metrics.commands.labels("unknown").inc()
        return jsonify(result | {"error": result.get("error") or "the outcome is unknown"}), 504
    found.metrics.commands.labels("refused").inc()
    return jsonify(result | {"error": result.get("error") or "the bridge refused the command"}), 400


# --- input ------------------------------------------------------------------------------------
def stream_id_ok(text: str) -> bool:
    """A stream id Redis accepts as an exclusive end: both parts within 64 bits, not 0-0."""
    if not STREAM_ID.match(text):
        return False
    parts = [int(part) for part in text.split("-")]
    return all(part < 2**64 for part in parts) and any(parts)


def json_object() -> dict[str, Any]:
    """The request's body as a JSON object, or BadRequest in words (every route that reads one uses
    this, so broken, non-object or too deeply nested JSON is a 400 everywhere, never a 500)."""
    # silent=True: a wrong Content-Type or broken JSON gets our own words, not Werkzeug's page.
    try:
        body = request.get_json(silent=True, force=True)
    except RecursionError:  # silent=True covers ValueError only; "[[[[…" nests past the limit
        body = None
    if body is None:
        raise BadRequest("the body must be JSON")
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _topic_filter_arg() -> str | None:
    """The ``topic`` filter of a read; a tenant user's is narrowed to the tenant's topics (no
    filter means all of them) or refused when it reaches outside."""
    raw = request.args.get("topic", "")
    topic_filter = None if raw in ("", "#") else validate_topic_filter(raw)
    scope = current_scope()
    return topic_filter if scope is None else scope.narrow(topic_filter)


def int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


@api.errorhandler(BadRequest)
@api.errorhandler(InvalidCommand)
def bad_request(exc: Exception) -> tuple[Response, int]:
    return error(str(exc), 400)
