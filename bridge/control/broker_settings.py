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
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from bridge.contract import protocol
from bridge.contract.errors import InvalidCommand
from bridge.contract.secret_box import (
    NO_KEY,
    PURPOSE_CONNECTION,
    PURPOSE_SAVED_SETTINGS,
    Binding,
    SealError,
    SecretBox,
    connection_binding,
    open_command_secret,
)

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

    A sealed ``password`` opens only for the connection it was sealed for (host, port, user name,
    TLS: ``connection_binding``). An absent one keeps the live password only while that connection
    stays the same: the live password is never offered to another broker. ``null`` means none.
    No field may hold a control character (CR/LF in a user name would reach the broker's log, which
    the bridge reads back for its client list), and CA, certificate and key files come only from
    CONFIG_TLS_DIR.
    """
    unknown = sorted(set(args) - set(FIELDS) - set(ignore))
    if unknown:
        raise InvalidCommand(f"unknown field {unknown[0]!r}; the settings fields are {', '.join(FIELDS)}")
    changes: dict[str, Any] = {}
    if "host" in args:
        host = args["host"]
        if not isinstance(host, str) or not host.strip() or len(host) > 253 or any(c.isspace() for c in host):
            raise InvalidCommand("host must be a host name or address (no spaces, at most 253 characters)")
        changes["broker_host"] = _printable("host", host.strip())
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
        changes["username"] = _printable("username", username) if username else None
    for flag in ("tls", "tls_insecure"):
        if flag in args:
            if not isinstance(args[flag], bool):
                raise InvalidCommand(f"{flag} must be true or false")
            changes[flag] = args[flag]
    for path in ("tls_ca", "tls_cert", "tls_key"):
        if path in args:
            changes[path] = tls_file(path, args[path], current.tls_dir, getattr(current, path))
    candidate = dataclasses.replace(current, **changes)
    if "password" in args:
        value = args["password"]
        password = None
        if value is not None:
            password = _printable("password", open_command_secret(box, value, "password", binding(candidate)))
        candidate = dataclasses.replace(candidate, password=password or None)
    elif binding(candidate) != binding(current):
        candidate = dataclasses.replace(candidate, password=None)
    if candidate.password and not candidate.username:
        raise InvalidCommand("a password needs a username")
    if candidate.tls_key and not candidate.tls_cert:
        raise InvalidCommand("tls_key needs tls_cert (the client certificate it belongs to)")
    return candidate


def binding(settings: Settings, purpose: str = PURPOSE_CONNECTION) -> Binding:
    """Where ``settings`` would send a password: what a sealed one must have been sealed for."""
    return connection_binding(
        settings.broker_host,
        settings.broker_port,
        settings.username,
        settings.tls,
        settings.tls_insecure,
        purpose,
    )


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _printable(name: str, text: str) -> str:
    """``text`` without control characters (C0, DEL, C1), or InvalidCommand naming the field and
    the character's code, never the text (it may be a password)."""
    found = _CONTROL.search(text)
    if found:
        raise InvalidCommand(f"{name} must not contain control characters (found U+{ord(found.group()):04X})")
    return text


def tls_file(name: str, value: object, tls_dir: str | None, live: str | None) -> str | None:
    """A CA, certificate or key file named by a command: inside CONFIG_TLS_DIR (a name there, or a
    path that resolves there), or the one the live connection already uses. The answer never says
    whether a file outside that directory exists."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidCommand(f"{name} must be the name of a file in CONFIG_TLS_DIR, or null")
    _printable(name, value)
    if live is not None and value == live:
        return live  # what the bridge already runs with (its environment's, say)
    if tls_dir is None:
        raise InvalidCommand(
            f"{name}: this bridge takes no file paths from commands (CONFIG_TLS_DIR is not set); "
            "put the CA, certificate and key files in one directory and set CONFIG_TLS_DIR to it"
        )
    base = os.path.realpath(tls_dir)
    real = os.path.realpath(os.path.join(base, value))  # an absolute value replaces base
    if os.path.commonpath([real, base]) != base:
        raise InvalidCommand(f"{name} must name a file inside CONFIG_TLS_DIR (a file name there)")
    if not os.path.isfile(real):
        raise InvalidCommand(f"{name}: no file {value[:200]!r} in CONFIG_TLS_DIR")
    return real


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
    # Sealed for these settings: whoever changes the host (or port, user, TLS) in Redis gets
    # settings without the password, never the password sent elsewhere.
    sealed = (
        box.seal(settings.password, binding(settings, PURPOSE_SAVED_SETTINGS))
        if settings.password and box
        else None
    )
    record["password_sealed"] = sealed
    return protocol.dumps(record)


def load_saved(client: redis.Redis, env: Settings, box: SecretBox | None) -> Settings | None:
    """The saved settings applied to ``env``, or None (none saved, or unusable: logged).

    The saved password is used only with the connection it was saved for: settings changed in
    Redis since (another host, say) are ignored as a whole, so the password is never sent there.
    """
    raw = client.get(env.names.KEY_BROKER_SETTINGS)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        sealed = record.get("password_sealed")
        args = {name: record[name] for name in FIELDS if name in record and name != "password"}
        settings = from_command(args, env, None)
        if not sealed:
            return settings
        if box is None:
            raise SealError(NO_KEY)
        password = box.open(sealed, binding(settings, PURPOSE_SAVED_SETTINGS))
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
