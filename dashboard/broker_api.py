"""The broker connection under /api/broker (docs/dashboard-api.md "Broker control"): the effective
settings, a test of other settings, switching to them (or back to the environment's), reconnect.

A password the browser sends is sealed here with CONFIG_SECRET_KEY before it goes on Redis and is
never stored, logged or echoed; without the key a password is refused with a sentence.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import (
    CMD_CONFIGURE,
    CMD_RECONNECT,
    CMD_TEST_CONNECTION,
    CONNECTION_FIELDS,
    CONNECTION_HISTORY_MAX,
    PROBE_TIMEOUT,
    loads_object,
)
from bridge.contract.secret_box import NO_KEY, seal_for_command
from dashboard.api import BadRequest, error, send_command
from dashboard.broker_context import current_names
from dashboard.commands import build_args_command
from dashboard.extensions import services

broker_api = Blueprint("broker_control", __name__, url_prefix="/api/broker")

# The test gives up after PROBE_TIMEOUT; the dashboard waits longer, so the bridge's own words
# ("timed out") arrive rather than a 504.
TEST_WAIT = PROBE_TIMEOUT + 2.0
# A switch tests first, then waits up to 5 s for the new connection (bridge/connection_commands.py).
CONFIGURE_WAIT = PROBE_TIMEOUT + 9.0
RECONNECT_WAIT = 9.0


@broker_api.get("/connection")
def connection() -> Any:
    found = loads_object(services().redis.get(current_names().KEY_CONNECTION))
    if found is None:
        return error("no connection settings yet: the bridge has not published them", 503)
    found["secret_key"] = services().secret_box is not None  # can a password be sent and saved?
    return jsonify(found)


@broker_api.get("/connection/history")
def connection_history() -> Response:
    raw = services().redis.lrange(current_names().KEY_CONNECTION_HISTORY, 0, CONNECTION_HISTORY_MAX - 1)
    return jsonify(switches=[e for e in (loads_object(r) for r in raw) if e is not None])


@broker_api.post("/connection/test")
def test_connection() -> Any:
    return send_command(build_args_command(CMD_TEST_CONNECTION, _settings_args()), TEST_WAIT)


@broker_api.put("/connection")
def configure() -> Any:
    return send_command(build_args_command(CMD_CONFIGURE, _settings_args()), CONFIGURE_WAIT)


@broker_api.delete("/connection")
def reset() -> Any:
    return send_command(build_args_command(CMD_CONFIGURE, {"reset": True}), CONFIGURE_WAIT)


@broker_api.post("/reconnect")
def reconnect() -> Any:
    return send_command(build_args_command(CMD_RECONNECT, {}), RECONNECT_WAIT)


def _settings_args() -> dict[str, Any]:
    """The settings a form sent, with the password sealed; absent fields keep the live values."""
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object of broker settings")
    unknown = sorted(set(body) - set(CONNECTION_FIELDS))
    if unknown:
        known = ", ".join(CONNECTION_FIELDS)
        raise BadRequest(f"unknown field {unknown[0]!r}; the settings fields are {known}")
    args = dict(body)
    if "password" in args:
        password = args["password"]
        if password is not None and not isinstance(password, str):
            raise BadRequest("password must be a string, or null for none")
        if password:
            box = services().secret_box
            if box is None:
                raise BadRequest(NO_KEY)
            args["password"] = seal_for_command(box, password)
        else:
            args["password"] = None
    return args


@broker_api.errorhandler(BadRequest)
@broker_api.errorhandler(InvalidCommand)
def bad_request(exc: Exception) -> tuple[Response, int]:
    return error(str(exc), 400)
