"""The broker connection under /api/broker (docs/dashboard-api.md "Broker control"): the effective
settings, a test of other settings, switching to them (or back to the environment's), reconnect.

A password the browser sends is sealed here with CONFIG_SECRET_KEY before it goes on Redis, bound
to the connection it is meant for (host, port, user name, TLS; absent fields are the live ones the
bridge published), and is never stored, logged or echoed; without the key a password is refused
with a sentence. A session may test settings (or switch, which tests first) a few times a minute.
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
from bridge.contract.secret_box import NO_KEY, Binding, connection_binding, seal_for_command
from dashboard import connection_tests
from dashboard.api import BadRequest, error, json_object, send_command
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
    args = _settings_args()
    too_many = _too_many_tests()
    if too_many is not None:
        return too_many
    return send_command(build_args_command(CMD_TEST_CONNECTION, args), TEST_WAIT)


@broker_api.put("/connection")
def configure() -> Any:
    args = _settings_args()
    too_many = _too_many_tests()
    if too_many is not None:
        return too_many
    return send_command(build_args_command(CMD_CONFIGURE, args), CONFIGURE_WAIT)


def _too_many_tests() -> tuple[Response, int] | None:
    found = services()
    wait = connection_tests.wait_needed(found.redis, connection_tests.who(found.auth, request))
    return None if wait is None else error(connection_tests.refusal(wait), 429)


@broker_api.delete("/connection")
def reset() -> Any:
    return send_command(build_args_command(CMD_CONFIGURE, {"reset": True}), CONFIGURE_WAIT)


@broker_api.post("/reconnect")
def reconnect() -> Any:
    return send_command(build_args_command(CMD_RECONNECT, {}), RECONNECT_WAIT)


def _settings_args() -> dict[str, Any]:
    """The settings a form sent, with the password sealed; absent fields keep the live values."""
    body = json_object()
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
            args["password"] = seal_for_command(box, password, _destination(args))
        else:
            args["password"] = None
    return args


def _destination(args: dict[str, Any]) -> Binding:
    """Where the bridge will send the password: the form's settings, the live ones for the rest
    (as the bridge fills them in). The bridge opens the password only for that connection."""
    live = loads_object(services().redis.get(current_names().KEY_CONNECTION)) or {}

    def pick(name: str) -> Any:
        return args[name] if name in args else live.get(name)

    host, port, username = pick("host"), pick("port"), pick("username")
    if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
        raise BadRequest(
            "host and port must be given with a password (the bridge has not published its live "
            "connection settings, or the form's are not valid)"
        )
    return connection_binding(
        host,
        port,
        username if isinstance(username, str) else None,
        pick("tls") is True,
        pick("tls_insecure") is True,
    )


@broker_api.errorhandler(BadRequest)
@broker_api.errorhandler(InvalidCommand)
def bad_request(exc: Exception) -> tuple[Response, int]:
    return error(str(exc), 400)
