"""The Tenants API under /api/tenants (docs/dashboard-api.md): tenant operations as ``cmd_dynsec``
commands to the bridge (dashboard/tenants.py says which).

A new account's password is generated here (``secrets``), sealed with CONFIG_SECRET_KEY for the
trip through Redis, and shown once: in the body of the response that created it, marked
``Cache-Control: no-store``. It is never stored, logged or sent anywhere else.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Blueprint, Response, jsonify, request

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import CMD_DYNSEC, DYNSEC_TIMEOUT
from bridge.contract.secret_box import NO_KEY, seal_for_command
from dashboard import tenants
from dashboard.api import error, send_command
from dashboard.broker_context import current_names
from dashboard.commands import NoAnswer, build_args_command, round_trip
from dashboard.extensions import services

logger = logging.getLogger(__name__)

tenants_api = Blueprint("tenants_api", __name__, url_prefix="/api/tenants")

# The bridge waits DYNSEC_TIMEOUT for the broker (plus its own SUBACK/PUBACK waits); the dashboard
# waits longer, so a broker without the plugin gets the bridge's sentence rather than a bare 504.
TENANT_TIMEOUT = DYNSEC_TIMEOUT + 5.0
PASSWORD_BYTES = 18  # 24 URL-safe characters


class Refused(Exception):
    """One step of a tenant operation failed: the HTTP answer to send."""

    def __init__(self, response: tuple[Response, int]):
        super().__init__("refused")
        self.response = response


def _timeout() -> float:
    return max(services().settings.command_timeout, TENANT_TIMEOUT)


def _body(request_fields: dict[str, Any]) -> dict[str, Any]:
    return build_args_command(CMD_DYNSEC, {"dynsec": request_fields})


def _run(request_fields: dict[str, Any]) -> dict[str, Any]:
    """One dynamic-security command; its ``result``, or Refused with the answer to give."""
    found = services()
    body = _body(request_fields)
    try:
        answer = round_trip(found.redis, body, _timeout(), current_names())
    except NoAnswer as exc:
        found.metrics.commands.labels("no_answer").inc()
        raise Refused(error(str(exc), 504)) from None
    if answer.get("ok") is not True:
        found.metrics.commands.labels("refused").inc()
        # The broker's own words ("Client already exists"), as the bridge passed them on.
        raise Refused((jsonify(answer | {"error": answer.get("error") or "the bridge refused"}), 400))
    found.metrics.commands.labels("ok").inc()
    result: dict[str, Any] = answer.get("result") or {}
    return result


def _prefix() -> str:
    return services().settings.tenant_prefix


@tenants_api.get("")
def list_tenants() -> Any:
    groups = _run(tenants.LIST_GROUPS).get("data")
    clients = _run(tenants.LIST_CLIENTS).get("data")
    return jsonify(prefix=_prefix(), tenants=tenants.tenants_from(groups, clients, _prefix()))


@tenants_api.post("")
def create_tenant() -> Any:
    name = tenants.check_tenant_name(_json_object().get("name"))
    role, group = tenants.create_tenant(name, _prefix())
    _run(role)
    try:
        _run(group)
    except Refused:
        _undo(tenants.undo_create_tenant(name)[1:])  # the role made a moment ago
        raise
    return jsonify(name=name, topic=tenants.tenant_topic(_prefix(), name), accounts=[]), 201


@tenants_api.delete("/<name>")
def delete_tenant(name: str) -> Any:
    name = tenants.check_tenant_name(name)
    clients = _run(tenants.LIST_CLIENTS).get("data")
    groups = {"groups": [tenants.object_name(name)]}
    found = tenants.tenants_from(groups, clients, _prefix())[0]
    for request_fields in tenants.delete_tenant(name, [a["username"] for a in found["accounts"]]):
        _run(request_fields)
    return jsonify(deleted=name)


@tenants_api.post("/<name>/accounts")
def add_account(name: str) -> Any:
    name = tenants.check_tenant_name(name)
    username = tenants.check_username(_json_object().get("username"))
    box = services().secret_box
    if box is None:
        return error(NO_KEY, 400)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    create, join = tenants.add_account(name, username, seal_for_command(box, password))
    _run(create)
    try:
        _run(join)
    except Refused:
        _undo([{"command": "deleteClient", "username": username}])
        raise
    response = jsonify(tenant=name, username=username, password=password)
    response.headers["Cache-Control"] = "no-store"  # shown once; no cache keeps it
    return response, 201


@tenants_api.post("/<name>/accounts/<username>/<action>")
def account_action(name: str, username: str, action: str) -> Any:
    tenants.check_tenant_name(name)
    commands = {"disable": "disableClient", "enable": "enableClient"}
    if action not in commands:
        return error(f"unknown account action {action!r}: use disable or enable", 404)
    request_fields = {"command": commands[action], "username": tenants.check_username(username)}
    return send_command(_body(request_fields), timeout=_timeout())


@tenants_api.delete("/<name>/accounts/<username>")
def delete_account(name: str, username: str) -> Any:
    tenants.check_tenant_name(name)
    request_fields = {"command": "deleteClient", "username": tenants.check_username(username)}
    return send_command(_body(request_fields), timeout=_timeout())


def _undo(steps: list[dict[str, Any]]) -> None:
    """Best effort: leave no half-made tenant or account behind; the first error is what counts."""
    for step in steps:
        try:
            _run(step)
        except Refused:
            logger.warning("could not undo %s after a failed tenant operation", step["command"])


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise InvalidCommand("the body must be a JSON object")
    return body


@tenants_api.errorhandler(Refused)
def refused(exc: Refused) -> tuple[Response, int]:
    return exc.response


@tenants_api.errorhandler(InvalidCommand)
def bad_request(exc: InvalidCommand) -> tuple[Response, int]:
    return error(str(exc), 400)
