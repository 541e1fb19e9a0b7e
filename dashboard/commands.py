"""Commands to the bridge: build and validate with the bridge's rules, send, await the answer.

The round trip subscribes to the results channel *before* publishing, so an answer cannot
arrive unseen, and gives up at once when PUBLISH reaches nobody.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import redis

from bridge.contract import mqtt5_properties
from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import (
    CMD_PUBLISH,
    COMMAND_RUN_MAX,
    ENCODING_UTF8,
    TYPE_RESULT,
    Names,
    command_body,
    dumps,
    loads_object,
    parse_command,
)

logger = logging.getLogger(__name__)

NO_LISTENER = "the bridge did not answer: no bridge is listening on Redis"


class NoAnswer(Exception):
    """The bridge did not answer a command; the message says why, for the 504 body."""


def build_command(kind: str, fields: Mapping[str, Any], topic_field: str = "topic") -> dict[str, Any]:
    """The command JSON for an API body, validated exactly as the bridge will validate it.

    The body goes through ``parse_command`` as the text that would be sent, so a bad value
    gets the bridge's own words without a trip through Redis. ``topic_field`` is the name the
    API uses for the topic (``filter`` for subscriptions), so errors name what people typed.
    """
    if topic_field not in fields:
        raise InvalidCommand(f"{topic_field} is missing")
    payload = fields.get("payload", "")
    # MQTT 5 properties (publish only): checked by the same function the bridge runs
    properties = mqtt5_properties.validate(fields.get("properties")) if kind == CMD_PUBLISH else {}
    body = command_body(
        kind,
        fields[topic_field],
        command_id=uuid.uuid4().hex,
        payload="" if payload is None else payload,
        encoding=fields.get("encoding", ENCODING_UTF8),
        qos=fields.get("qos", 0),
        retain=fields.get("retain", False),
        args={"properties": properties} if properties else None,
    )
    parse_command(dumps(body))
    return body


def build_args_command(kind: str, args: Mapping[str, Any], topic: str | None = None) -> dict[str, Any]:
    """The JSON of a command that carries fields of its own (``args``), checked as the bridge
    checks the common ones; the bridge's handler checks the rest, so callers check them first
    with that handler's own validator when they want a 400 without a round trip."""
    body = command_body(kind, topic, command_id=uuid.uuid4().hex, args=args)
    parse_command(dumps(body))
    return body


def expiry(client: redis.Redis, timeout: float) -> float:
    """``expires_at`` for a command we wait ``timeout`` s for: late enough that the bridge can
    still run it and answer in time (COMMAND_RUN_MAX), by Redis's clock, which the bridge shares
    whatever the two hosts' clocks say. A command still queued at that moment is refused unrun,
    so one we answered 504 cannot actuate a device later (and twice, if the user clicks again)."""
    seconds, micros = client.time()
    # A timeout near or below COMMAND_RUN_MAX leaves no such margin: then half of it (at most
    # 1 s), so that a command taken at once still runs.
    return seconds + micros / 1e6 + max(timeout - COMMAND_RUN_MAX, min(timeout / 2, 1.0))


def round_trip(
    client: redis.Redis, body: dict[str, Any], timeout: float, names: Names | None = None
) -> dict[str, Any]:
    """Send one command to the bridge ``names`` belongs to (the unnamed one by default) and return
    its ``command_result``; NoAnswer otherwise."""
    names = names or Names()
    deadline = time.monotonic() + timeout
    body = {**body, "expires_at": expiry(client, timeout)}
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(names.CHANNEL_RESULTS)
        # SUBSCRIBE and PUBLISH travel on different connections: wait for the confirmation so
        # the bridge's answer cannot overtake our subscription.
        _await_subscribed(pubsub, deadline)
        receivers = client.publish(names.CHANNEL_COMMANDS, dumps(body))
        if receivers == 0:
            raise NoAnswer(NO_LISTENER)
        while (remaining := deadline - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=remaining)
            if message is None or message.get("type") != "message":
                continue
            result = loads_object(message.get("data"))
            if result and result.get("type") == TYPE_RESULT and result.get("id") == body["id"]:
                return result
        raise NoAnswer(f"the bridge did not answer within {timeout:g} s")
    finally:
        pubsub.close()


def _await_subscribed(pubsub: Any, deadline: float) -> None:
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=remaining)
        if message is not None and message.get("type") == "subscribe":
            return
    raise NoAnswer("the bridge did not answer: subscribing to its results timed out")
