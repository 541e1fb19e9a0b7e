"""``cmd_dynsec``: one mosquitto dynamic-security command, sent on the bridge's own connection.

The plugin reads JSON commands on ``$CONTROL/dynamic-security/v1`` and answers every message
on ``…/v1/response`` with ``{"responses": [{"command", "error"?, "data"?, "correlationData"?}]}``,
echoing the ``correlationData`` a command carried (checked against mosquitto 2.0.11). Each command
the bridge sends carries a fresh one, so answers are matched to the waiting command even when
several run at once (background commands) or another admin client shares the response topic.

Responses arrive like any message (paho thread -> queue -> writer); the writer hands every
``$CONTROL/`` message to ``DynsecClient.on_control`` instead of Redis, so neither a request (which
may hold a password in clear: the broker needs it so) nor an answer ever reaches mqtt:messages or
mqtt:history, whatever filter a user subscribes.

Passwords come sealed with CONFIG_SECRET_KEY (``{"sealed": token}``), bound to the account and the
broker (``account_binding``), and are opened here, just before the publish; they are never logged
and never part of an answer. No command may touch the bridge's own account (dynsec_guard.py).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from bridge.contract import protocol
from bridge.contract.errors import InvalidCommand
from bridge.contract.secret_box import SecretBox, account_binding, open_command_secret
from bridge.control import dynsec_guard
from bridge.control.commands import Answer
from bridge.control.dynsec_checks import PASSWORD_FIELD, check_request
from bridge.ingest.mqtt_source import Item
from bridge.ingest.outgoing import UnknownOutcome

logger = logging.getLogger(__name__)

DYNSEC_TOPIC = "$CONTROL/dynamic-security/v1"
DYNSEC_RESPONSE_TOPIC = DYNSEC_TOPIC + "/response"
# How long the bridge waits for the plugin's answer (the contract's DYNSEC_TIMEOUT). The dashboard
# waits longer than this (dashboard/tenants_api.py), so the user gets this sentence, not a bare 504.
DYNSEC_TIMEOUT = protocol.DYNSEC_TIMEOUT
PUBLISH_TIMEOUT = 3.0
ARGS_FIELD = "dynsec"


class Broker(Protocol):
    def is_connected(self) -> bool: ...

    def subscribe(self, topic_filter: str, qos: int, timeout: float = ...) -> str | None: ...

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, timeout: float) -> str | None: ...


class DynsecClient:
    """Sends dynamic-security commands and waits for their answers (command threads); receives
    the answers from the writer thread (``on_control``)."""

    def __init__(
        self,
        broker: Broker,
        box: SecretBox | None,
        timeout: float = DYNSEC_TIMEOUT,
        *,
        broker_name: str = protocol.UNNAMED_BROKER,
        own_username: Callable[[], str | None] = lambda: None,
    ):
        self.broker = broker
        self.box = box
        self.timeout = timeout
        self.broker_name = broker_name  # what passwords are sealed for (the dashboard's broker name)
        self.own_username = own_username  # the account the live connection uses
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}

    # --- the command handler (a background command thread) --------------------------------
    def handle(self, command: protocol.Command) -> Answer:
        unknown = sorted(set(command.args) - {ARGS_FIELD})
        if unknown:
            raise InvalidCommand(
                f'cmd_dynsec takes one field of its own, "{ARGS_FIELD}"; '
                f"it does not take {', '.join(unknown)}"
            )
        request = check_request(command.args.get(ARGS_FIELD))
        name = request["command"]
        if PASSWORD_FIELD in request:
            binding = account_binding(self.broker_name, request["username"])
            request[PASSWORD_FIELD] = open_command_secret(
                self.box, request[PASSWORD_FIELD], PASSWORD_FIELD, binding
            )
        if not self.broker.is_connected():
            return Answer("the broker is not connected; the dynamic-security command was not sent")
        refused = dynsec_guard.refusal(request, self.own_username(), self._own_holdings)
        if refused is not None:
            return Answer(refused)
        response = self.request(request)
        if isinstance(response, UnknownOutcome):
            return Answer(UnknownOutcome(f"{name} may or may not have been carried out: {response}"))
        if isinstance(response, str):
            return Answer(response)
        result = {"command": name, **{k: v for k, v in response.items() if k in ("data", "error")}}
        error = response.get("error")
        if error is not None:
            # The broker's own words ("Client already exists"), which the dashboard shows as they are.
            return Answer(f"the broker refused {name}: {error}", result)
        return Answer(result=result)

    def request(self, request: dict[str, Any]) -> dict[str, Any] | str:
        """Send one command; the broker's response object, or a sentence saying why there is none."""
        error = self.broker.subscribe(DYNSEC_RESPONSE_TOPIC, 0)
        if error is not None:
            return (
                f"cannot subscribe to {DYNSEC_RESPONSE_TOPIC}: {error} (the bridge's account needs a "
                "role that allows $CONTROL/dynamic-security/#; see docs/mosquitto.md)"
            )
        correlation = uuid.uuid4().hex
        event, box = threading.Event(), list[dict[str, Any]]()
        with self._lock:
            self._waiting[correlation] = (event, box)
        try:
            payload = json.dumps({"commands": [{**request, "correlationData": correlation}]})
            error = self.broker.publish(DYNSEC_TOPIC, payload.encode("utf-8"), 1, False, PUBLISH_TIMEOUT)
            del payload  # it may hold a password in clear
            if error is not None:
                return error
            if not event.wait(self.timeout):
                # The broker took the command (PUBACK), so a plugin may have carried it out.
                return UnknownOutcome(
                    f"the broker took the command but did not answer on {DYNSEC_RESPONSE_TOPIC} within "
                    f"{self.timeout:g} s, so whether it was carried out is unknown: is the dynamic "
                    "security plugin loaded, and may the bridge's account publish to "
                    "$CONTROL/dynamic-security/v1? (docs/mosquitto.md)"
                )
            return box[0]
        finally:
            with self._lock:
                self._waiting.pop(correlation, None)

    def _own_holdings(self) -> dynsec_guard.Holdings | str:
        own = self.own_username()
        found = self.request({"command": "getClient", "username": own})
        if isinstance(found, str):
            return found
        if found.get("error") == "Client not found":
            return dynsec_guard.Holdings(frozenset(), frozenset())  # not a dynamic-security account
        if found.get("error"):
            return f"getClient: {found['error']}"
        return dynsec_guard.holdings_from(found.get("data"), self._group_roles)

    def _group_roles(self, group: str) -> list[str] | str:
        found = self.request({"command": "getGroup", "groupname": group})
        if isinstance(found, str):
            return found
        data = found.get("data")
        roles = data.get("group", {}).get("roles") if isinstance(data, dict) else None
        if found.get("error") or not isinstance(roles, list):
            return f"getGroup {group!r}: {found.get('error') or 'no roles in the answer'}"
        return [r["rolename"] for r in roles if isinstance(r, dict) and isinstance(r.get("rolename"), str)]

    # --- answers (the writer thread) ------------------------------------------------------
    def on_control(self, items: list[Item]) -> None:
        """Every ``$CONTROL/`` message the bridge received; answers go to their waiting command,
        the rest (its own requests seen through a wide filter, say) are dropped."""
        for item in items:
            if item[0] != DYNSEC_RESPONSE_TOPIC:
                continue
            for response in _responses(item[1]):
                correlation = response.get("correlationData")
                with self._lock:
                    waiter = self._waiting.get(correlation) if isinstance(correlation, str) else None
                if waiter is not None:
                    event, box = waiter
                    box.append(response)
                    event.set()


def _responses(payload: bytes) -> list[dict[str, Any]]:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        logger.warning("ignoring a dynamic-security response that is not JSON")
        return []
    responses = body.get("responses") if isinstance(body, dict) else None
    if not isinstance(responses, list):
        return []
    return [r for r in responses if isinstance(r, dict)]
