"""Broker connection settings changed at run time: read from a command, kept in Redis, described.

A command's settings (``cmd_test_connection``, ``cmd_configure``) name only what differs from the
live connection; the rest is taken from it. Saved settings (``mqtt:bridge:broker-settings``) hold
the password sealed with CONFIG_SECRET_KEY, never readable; described settings (the
``mqtt:bridge:connection`` key, ``GET /api/broker/connection``) say only whether one is set.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from bridge.contract import protocol
from bridge.contract.errors import InvalidCommand
from bridge.contract.secret_box import NO_KEY, SealError, SecretBox, open_command_secret

if TYPE_CHECKING:  # the settings sit above the parts; a part only reads them
    from bridge.config import Settings

logger = logging.getLogger(__name__)

SOURCE_ENVIRONMENT = "environment"
SOURCE_SAVED = "saved"
PROTOCOL_NAMES = {5: "5", 4: "3.1.1"}
_PROTOCOLS = {"5": 5, "5.0": 5, "3.1.1": 4, "311": 4, "4": 4, 5: 5, 4: 4}
FIELDS = protocol.CONNECTION_FIELDS
HISTORY_MAX = protocol.CONNECTION_HISTORY_MAX


def from_command(
    args: Mapping[str, Any],
    current: Settings,
    box: SecretBox | None,
    ignore: tuple[str, ...] = (),
) -> Settings:
    """``current`` with the changes a command asks for; InvalidCommand says what is wrong.

    An absent ``password`` keeps the live one only while host, port and user name stay the same:
    the live password is never offered to another broker. ``null`` means no password.
    """
    unknown = sorted(set(args) - set(FIELDS) - set(ignore))
    if unknown:
        raise InvalidCommand(f"unknown field {unknown[0]!r}; the settings fields are {', '.join(FIELDS)}")
    changes: dict[str, Any] = {}
    if "host" in args:
        host = args["host"]
        if not isinstance(host, str) or not host.strip() or len(host) > 253 or any(c.isspace() for c in host):
            raise InvalidCommand("host must be a host name or address (no spaces, at most 253 characters)")
        changes["broker_host"] = host.strip()
    if "port" in args:
        port = args["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidCommand("port must be a whole number from 1 to 65535")
        changes["broker_port"] = port
    if "protocol" in args:
        if args["protocol"] not in _PROTOCOLS or isinstance(args["protocol"], bool):
            raise InvalidCommand('protocol must be "5" or "3.1.1"')
        changes["protocol"] = _PROTOCOLS[args["protocol"]]
    if "keepalive" in args:
        keepalive = args["keepalive"]
        if isinstance(keepalive, bool) or not isinstance(keepalive, int) or not 5 <= keepalive <= 3600:
            raise InvalidCommand("keepalive must be a whole number of seconds from 5 to 3600")
        changes["keepalive"] = keepalive
    if "username" in args:
        username = args["username"]
        if username is not None and (not isinstance(username, str) or len(username) > 65535):
            raise InvalidCommand("username must be a string or null")
        changes["username"] = username or None
    for flag in ("tls", "tls_insecure"):
        if flag in args:
            if not isinstance(args[flag], bool):
                raise InvalidCommand(f"{flag} must be true or false")
            changes[flag] = args[flag]
    for path in ("tls_ca", "tls_cert", "tls_key"):
        if path in args:
            changes[path] = _file(path, args[path])
    candidate = dataclasses.replace(current, **changes)
    if "password" in args:
        value = args["password"]
        password = None if value is None else open_command_secret(box, value, "password")
        candidate = dataclasses.replace(candidate, password=password or None)
    elif (candidate.broker_host, candidate.broker_port, candidate.username) != (
        current.broker_host,
        current.broker_port,
        current.username,
    ):
        candidate = dataclasses.replace(candidate, password=None)
    if candidate.password and not candidate.username:
        raise InvalidCommand("a password needs a username")
    if candidate.tls_key and not candidate.tls_cert:
        raise InvalidCommand("tls_key needs tls_cert (the client certificate it belongs to)")
    return candidate


def _file(name: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidCommand(f"{name} must be a file path on the bridge's host, or null")
    if not os.path.isfile(value):
        raise InvalidCommand(f"{name}: no file {value[:200]!r} on the bridge's host")
    return value


def describe(settings: Settings, source: str, updated_at: float | None = None) -> dict[str, Any]:
    """The effective settings as people may see them: the password only as set or not set."""
    return {
        "host": settings.broker_host,
        "port": settings.broker_port,
        "broker": settings.broker,
        "protocol": PROTOCOL_NAMES.get(settings.protocol, str(settings.protocol)),
        "tls": settings.tls,
        "tls_ca": settings.tls_ca,
        "tls_cert": settings.tls_cert,
        "tls_key": settings.tls_key,
        "tls_insecure": settings.tls_insecure,
        "username": settings.username,
        "password": "set" if settings.password else "not set",
        "client_id": settings.client_id,
        "keepalive": settings.keepalive,
        "source": source,
        "updated_at": time.time() if updated_at is None else updated_at,
    }


def saved_record(settings: Settings, box: SecretBox | None) -> str:
    """What ``cmd_configure`` keeps in Redis: the password sealed, so it is never readable there."""
    if settings.password and box is None:
        raise InvalidCommand(NO_KEY)
    record = describe(settings, SOURCE_SAVED)
    record.pop("password")
    record.pop("broker")
    record.pop("client_id")  # the live client id stays the environment's (the session is its)
    record["password_sealed"] = box.seal(settings.password) if settings.password and box else None
    return protocol.dumps(record)


def load_saved(client: redis.Redis, env: Settings, box: SecretBox | None) -> Settings | None:
    """The saved settings applied to ``env``, or None (none saved, or unreadable: logged)."""
    raw = client.get(env.names.KEY_BROKER_SETTINGS)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        sealed = record.get("password_sealed")
        password = None
        if sealed:
            if box is None:
                raise SealError(NO_KEY)
            password = box.open(sealed)
        args = {name: record[name] for name in FIELDS if name in record and name != "password"}
        settings = from_command(args, env, None)
        return dataclasses.replace(settings, password=password)
    except (ValueError, AttributeError, TypeError, KeyError, InvalidCommand, SealError) as exc:
        logger.error(
            "ignoring the broker settings saved in Redis (%s); using the environment's. "
            "Save them again from the dashboard, or reset them",
            exc,
        )
        return None


def record_switch(client: redis.Redis, entry: dict[str, Any], names: protocol.Names | None = None) -> None:
    """Keep one switch of the live connection in the connection history (newest first)."""
    key = (names or protocol.Names()).KEY_CONNECTION_HISTORY
    pipe = client.pipeline(transaction=False)
    pipe.lpush(key, protocol.dumps(protocol.envelope("connection_switch", **entry)))
    pipe.ltrim(key, 0, HISTORY_MAX - 1)
    pipe.execute()
