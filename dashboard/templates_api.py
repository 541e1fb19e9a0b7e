"""Saved publishes: named publish templates and the last publishes with their results, in Redis.

Both live on the server (docs/dashboard-api.md), so every user of the dashboard sees the same
templates and nothing about publishes stays in a browser after logout. The publish history is
recorded after every ``POST /api/publish`` (an ``after_app_request`` hook, so the publish route
itself is unchanged) and every template run.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request

from bridge.contract import mqtt5_properties
from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import (
    CMD_PUBLISH,
    ENCODING_UTF8,
    ENCODINGS,
    KEY_PUBLISH_TEMPLATES,
    decode_payload,
    dumps,
    loads_object,
    validate_publish_topic,
)
from dashboard.access import check_command_scope, current_scope
from dashboard.api import error
from dashboard.broker_context import current_names
from dashboard.commands import NoAnswer, build_command, round_trip
from dashboard.extensions import services

logger = logging.getLogger(__name__)

templates_api = Blueprint("templates_api", __name__, url_prefix="/api/publish")

TEMPLATES_MAX = 200
HISTORY_MAX = 50  # the last N publishes kept
NAME_MAX = 100
TEMPLATE_PAYLOAD_MAX = 256 * 1024
HISTORY_PAYLOAD_MAX = 16 * 1024  # a larger payload is recorded by its size only
HISTORY_PROPERTIES_MAX = 16 * 1024  # properties (as JSON) larger than this are recorded by size only
# POST /api/publish and POST /api/brokers/<name>/publish (app.py registers the API twice)
PUBLISH_ENDPOINTS = ("api.publish", "broker_api.publish")


class TemplateError(Exception):
    """A template the API refuses with 400; the message says what to fix."""


def _template_from(body: dict[str, Any], now: float, existing: dict[str, Any] | None) -> dict[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TemplateError("name is missing: give the template a name")
    if len(name) > NAME_MAX:
        raise TemplateError(f"name is longer than {NAME_MAX} characters")
    topic = validate_publish_topic(body.get("topic"))  # InvalidCommand: the bridge's own words
    payload = body.get("payload", "")
    if payload is None:
        payload = ""
    if not isinstance(payload, str):
        raise TemplateError("payload must be a string (use encoding 'base64' for binary data)")
    if len(payload) > TEMPLATE_PAYLOAD_MAX:
        raise TemplateError(f"payload is longer than {TEMPLATE_PAYLOAD_MAX:,} characters")
    encoding = body.get("encoding", ENCODING_UTF8)
    if encoding not in ENCODINGS:
        raise TemplateError(f"encoding must be one of {', '.join(ENCODINGS)}")
    decode_payload(payload, encoding)
    qos = body.get("qos", 0)
    if isinstance(qos, bool) or qos not in (0, 1, 2):
        raise TemplateError("qos must be 0, 1 or 2")
    retain = body.get("retain", False)
    if not isinstance(retain, bool):
        raise TemplateError("retain must be true or false")
    properties = mqtt5_properties.validate(body.get("properties"))  # the bridge's own check
    return {
        "id": existing["id"] if existing else uuid.uuid4().hex[:12],
        "name": name.strip(),
        "topic": topic,
        "payload": payload,
        "encoding": encoding,
        "qos": qos,
        "retain": retain,
        "properties": properties,
        "created_at": existing.get("created_at", now) if existing else now,
        "updated_at": now,
    }


def _all_templates() -> list[dict[str, Any]]:
    raw = services().redis.hgetall(KEY_PUBLISH_TEMPLATES)
    found = [t for t in (loads_object(v) for v in raw.values()) if t is not None and _in_scope(t)]
    return sorted(found, key=lambda t: (str(t.get("name", "")).casefold(), str(t.get("id"))))


def _template(template_id: str) -> dict[str, Any] | None:
    """The template, if there is one this user may see (a tenant user: one for their topics)."""
    template = loads_object(services().redis.hget(KEY_PUBLISH_TEMPLATES, template_id))
    return template if template is not None and _in_scope(template) else None


def _in_scope(template: dict[str, Any]) -> bool:
    scope = current_scope()
    return scope is None or scope.allows_topic(template.get("topic"))


def _check_scope(template: dict[str, Any]) -> None:
    scope = current_scope()
    if scope is not None:
        scope.check_topic(template["topic"], "save templates")


def _body() -> dict[str, Any]:
    try:
        body = request.get_json(silent=True, force=True)
    except RecursionError:
        body = None
    if not isinstance(body, dict):
        raise TemplateError("the body must be a JSON object")
    return body


@templates_api.get("/templates")
def list_templates() -> Response:
    return jsonify(templates=_all_templates())


@templates_api.post("/templates")
def create_template() -> Any:
    client = services().redis
    if client.hlen(KEY_PUBLISH_TEMPLATES) >= TEMPLATES_MAX:
        raise TemplateError(f"there are already {TEMPLATES_MAX} templates: delete one first")
    template = _template_from(_body(), time.time(), None)
    _check_scope(template)
    client.hset(KEY_PUBLISH_TEMPLATES, template["id"], dumps(template))
    return jsonify(template), 201


@templates_api.put("/templates/<template_id>")
def update_template(template_id: str) -> Any:
    existing = _template(template_id)
    if existing is None:
        return error(f"no template {template_id!r}", 404)
    template = _template_from(_body(), time.time(), existing)
    _check_scope(template)
    services().redis.hset(KEY_PUBLISH_TEMPLATES, template_id, dumps(template))
    return jsonify(template)


@templates_api.delete("/templates/<template_id>")
def delete_template(template_id: str) -> Any:
    if _template(template_id) is None or not services().redis.hdel(KEY_PUBLISH_TEMPLATES, template_id):
        return error(f"no template {template_id!r}", 404)
    return jsonify(deleted=template_id)


@templates_api.post("/templates/<template_id>/run")
def run_template(template_id: str) -> Any:
    template = _template(template_id)
    if template is None:
        return error(f"no template {template_id!r}", 404)
    answer, status = _publish(template)
    _record(template, answer, status, template_name=str(template.get("name")))
    return jsonify(answer), status


def _publish(fields: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Send one publish as POST /api/publish does; the answer and its HTTP status."""
    found = services()
    try:
        body = build_command(CMD_PUBLISH, fields)
    except InvalidCommand as exc:
        return {"ok": False, "error": str(exc)}, 400
    check_command_scope(body)
    try:
        result = round_trip(found.redis, body, found.settings.command_timeout, current_names())
    except NoAnswer as exc:
        found.metrics.commands.labels("no_answer").inc()
        return {"ok": False, "error": str(exc)}, 504
    if result.get("ok") is True:
        found.metrics.commands.labels("ok").inc()
        return result, 200
    found.metrics.commands.labels("refused").inc()
    return result | {"error": result.get("error") or "the bridge refused the command"}, 400


# --- publish history ------------------------------------------------------------------------------
@templates_api.get("/history")
def publish_history() -> Response:
    raw = services().redis.lrange(current_names().KEY_PUBLISH_HISTORY, 0, HISTORY_MAX - 1)
    scope = current_scope()
    found = [e for e in (loads_object(r) for r in raw) if e is not None]
    if scope is not None:
        found = [e for e in found if scope.allows_topic(e.get("topic"))]
    return jsonify(publishes=found, limit=HISTORY_MAX)


@templates_api.delete("/history")
def clear_publish_history() -> Response:
    services().redis.delete(current_names().KEY_PUBLISH_HISTORY)
    return jsonify(publishes=[], limit=HISTORY_MAX)


def _record(fields: dict[str, Any], answer: Any, status: int, template_name: str | None = None) -> None:
    topic = fields.get("topic")
    payload = fields.get("payload")
    payload = payload if isinstance(payload, str) else ""
    qos, retain = fields.get("qos", 0), fields.get("retain", False)
    entry: dict[str, Any] = {
        "timestamp": time.time(),
        "topic": topic[:1024] if isinstance(topic, str) else None,
        "payload": payload if len(payload) <= HISTORY_PAYLOAD_MAX else None,
        "payload_chars": len(payload),
        "encoding": fields.get("encoding", ENCODING_UTF8) if fields.get("encoding") in ENCODINGS else None,
        "qos": qos if qos in (0, 1, 2) and not isinstance(qos, bool) else None,
        "retain": retain if isinstance(retain, bool) else None,
        **_recorded_properties(fields.get("properties")),
        "template": template_name,
        "ok": status == 200 and isinstance(answer, dict) and answer.get("ok") is True,
        "status": status,
        "error": answer.get("error") if isinstance(answer, dict) else None,
    }
    pipe = services().redis.pipeline(transaction=False)
    key = current_names().KEY_PUBLISH_HISTORY  # what was published to this broker
    pipe.lpush(key, dumps(entry))
    pipe.ltrim(key, 0, HISTORY_MAX - 1)
    pipe.execute()


def _recorded_properties(properties: Any) -> dict[str, Any]:
    """``properties`` as the history keeps them: whole up to HISTORY_PROPERTIES_MAX bytes of JSON,
    else only their size, like a large payload (a refused publish may carry megabytes of them)."""
    if not isinstance(properties, dict):
        return {"properties": {}}
    size = len(dumps(properties).encode("utf-8"))
    if size > HISTORY_PROPERTIES_MAX:
        return {"properties": None, "properties_bytes": size}
    return {"properties": properties}


@templates_api.after_app_request
def record_api_publish(response: Response) -> Response:
    """Every POST /api/publish, refused or not, goes to the history with its answer."""
    if (
        request.endpoint not in PUBLISH_ENDPOINTS
        or request.method != "POST"
        or response.status_code in (401, 403)
    ):
        return response
    try:
        body = request.get_json(silent=True, force=True)
        answer = json.loads(response.get_data(as_text=True)) if response.is_json else None
        _record(body if isinstance(body, dict) else {}, answer, response.status_code)
    except Exception:  # the publish has happened; a history that cannot be written must not hide that
        logger.exception("could not record a publish in the history")
    return response


@templates_api.errorhandler(TemplateError)
@templates_api.errorhandler(InvalidCommand)
def bad_template(exc: Exception) -> tuple[Response, int]:
    return error(str(exc), 400)
