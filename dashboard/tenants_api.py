"""The Tenants API under /api/tenants (docs/dashboard-api.md): tenant operations as ``cmd_dynsec``
commands to the bridge (dashboard/tenants.py says which).

A new account's password is generated here (``secrets``), sealed with CONFIG_SECRET_KEY for the
trip through Redis (bound to that account on this broker), and shown once: in the body of the
response that created it, marked ``Cache-Control: no-store``. It is never stored, logged or sent
anywhere else.

An account is changed only through the tenant it belongs to: another tenant's account, or one in
no tenant (the bridge's own, say), is refused with 404 and left as it is. The bridge refuses on
its own any command that would change its own account (bridge/control/dynsec_guard.py).
Creating a tenant resumes one half made (its role made, its group not, when a bridge died between
the two), and deleting one takes whatever of it is there.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Blueprint, Response, jsonify

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import CMD_DYNSEC, DYNSEC_TIMEOUT, OUTCOME_UNKNOWN
from bridge.contract.secret_box import NO_KEY, account_binding, seal_for_command
from dashboard import tenants
from dashboard.api import BadRequest, error, json_object, send_command
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


def _run(request_fields: dict[str, Any], tolerate: tuple[str, ...] = ()) -> dict[str, Any]:
    """One dynamic-security command; its ``result``, or Refused with the answer to give. A
    refusal in the plugin's words listed in ``tolerate`` counts as done (its ``result`` has the
    ``error``)."""
    found = services()
    body = _body(request_fields)
    try:
        answer = round_trip(found.redis, body, _timeout(), current_names())
    except NoAnswer as exc:
        found.metrics.commands.labels("no_answer").inc()
        raise Refused(error(str(exc), 504)) from None
    result: dict[str, Any] = answer.get("result") or {}
    if answer.get("ok") is not True and result.get("error") not in tolerate:
        if answer.get("outcome") == OUTCOME_UNKNOWN:
            found.metrics.commands.labels("unknown").inc()
            raise Refused((jsonify(answer | {"error": answer.get("error") or "the outcome is unknown"}), 504))
        found.metrics.commands.labels("refused").inc()
        # The broker's own words ("Client already exists"), as the bridge passed them on.
        raise Refused((jsonify(answer | {"error": answer.get("error") or "the bridge refused"}), 400))
    found.metrics.commands.labels("ok").inc()
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
    name = tenants.check_tenant_name(json_object().get("name"))
    if tenants.object_name(name) in tenants.names_in(_run(tenants.LIST_GROUPS).get("data"), "groups"):
        return error(f"tenant {name!r} exists already", 409)
    role, group = tenants.create_tenant(name, _prefix())
    _run(role, tolerate=(tenants.ROLE_EXISTS,))  # made before a bridge died: take it up
    try:
        _run(group)
    except Refused:
        _undo(tenants.undo_create_tenant(name)[1:])  # the role, rather than half a tenant
        raise
    return jsonify(name=name, topic=tenants.tenant_topic(_prefix(), name), accounts=[]), 201


@tenants_api.delete("/<name>")
def delete_tenant(name: str) -> Any:
    name = tenants.check_tenant_name(name)
    groups = tenants.names_in(_run(tenants.LIST_GROUPS).get("data"), "groups")
    roles = tenants.names_in(_run(tenants.LIST_ROLES).get("data"), "roles")
    if tenants.object_name(name) not in groups + roles:
        return error(f"there is no tenant {name!r}", 404)
    clients = _run(tenants.LIST_CLIENTS).get("data")
    found = tenants.tenants_from({"groups": [tenants.object_name(name)]}, clients, _prefix())[0]
    gone = (tenants.CLIENT_NOT_FOUND, tenants.GROUP_NOT_FOUND, tenants.ROLE_NOT_FOUND)
    for request_fields in tenants.delete_tenant(name, [a["username"] for a in found["accounts"]]):
        _run(request_fields, tolerate=gone)
    return jsonify(deleted=name)


@tenants_api.post("/<name>/accounts")
def add_account(name: str) -> Any:
    name = tenants.check_tenant_name(name)
    username = tenants.check_username(json_object().get("username"))
    box = services().secret_box
    if box is None:
        return error(NO_KEY, 400)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    sealed = seal_for_command(box, password, account_binding(current_names().broker, username))
    create, join = tenants.add_account(name, username, sealed)
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
    name, username = tenants.check_tenant_name(name), tenants.check_username(username)
    commands = {"disable": "disableClient", "enable": "enableClient"}
    if action not in commands:
        return error(f"unknown account action {action!r}: use disable or enable", 404)
    _require_member(name, username)
    return send_command(_body({"command": commands[action], "username": username}), timeout=_timeout())


@tenants_api.delete("/<name>/accounts/<username>")
def delete_account(name: str, username: str) -> Any:
    name, username = tenants.check_tenant_name(name), tenants.check_username(username)
    _require_member(name, username)
    return send_command(_body({"command": "deleteClient", "username": username}), timeout=_timeout())


def _require_member(tenant: str, username: str) -> None:
    """Refused (404) unless ``username`` is an account of ``tenant``: a tenant's routes never touch
    another tenant's accounts, nor any account outside the tenants."""
    found = _run(tenants.get_client(username), tolerate=(tenants.CLIENT_NOT_FOUND,))
    if not tenants.in_tenant(found.get("data"), tenant):
        raise Refused(
            error(f"there is no account {username!r} in tenant {tenant!r}; nothing was changed", 404)
        )


def _undo(steps: list[dict[str, Any]]) -> None:
    """Best effort: leave no half-made tenant or account behind; the first error is what counts."""
    for step in steps:
        try:
            _run(step)
        except Refused:
            logger.warning("could not undo %s after a failed tenant operation", step["command"])


@tenants_api.errorhandler(Refused)
def refused(exc: Refused) -> tuple[Response, int]:
    return exc.response


@tenants_api.errorhandler(BadRequest)
@tenants_api.errorhandler(InvalidCommand)
def bad_request(exc: Exception) -> tuple[Response, int]:
    return error(str(exc), 400)
