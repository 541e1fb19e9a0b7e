"""The commands that act on the broker connection: ``cmd_test_connection``, ``cmd_reconnect``
and ``cmd_configure`` (docs/channels.md "Broker control").

A test runs in a connection of its own (bridge/connection_probe.py), never the live one. A
configure tests first and switches only after the test connected; every switch is kept in the
connection history, and the status channel says why the bridge disconnected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from bridge.contract import protocol
from bridge.contract.errors import InvalidCommand
from bridge.contract.secret_box import SecretBox
from bridge.control import broker_settings
from bridge.control.commands import Answer, CommandProcessor
from bridge.control.connection_probe import Endpoint, probe
from bridge.control.rate_limit import RateLimit
from bridge.ingest.mqtt_source import MqttSource
from bridge.ingest.session import SessionFilters
from bridge.insight.status import BrokerStatus

if TYPE_CHECKING:  # the settings sit above the parts; a part only reads them
    from bridge.config import Settings

logger = logging.getLogger(__name__)

CONNECT_WAIT = 5.0  # how long a reconnect or switch waits to report the new connection up
# Connection tests (and switches, which test first) per minute, whoever asks: each opens a
# connection to a host a command names, so without a limit the bridge is a port scanner.
PROBES_PER_MINUTE = 20


class ConnectionCommands:
    """Owns the effective broker settings after start: the environment's or the saved ones."""

    def __init__(
        self,
        env_settings: Settings,
        settings: Settings,
        source_name: str,
        mqtt: MqttSource,
        status: BrokerStatus,
        client: redis.Redis,
        box: SecretBox | None,
        on_switch: Callable[[Settings], None] = lambda settings: None,
        load_session_filters: Callable[[str], set[str]] | None = None,
    ):
        self.env_settings = env_settings
        self.settings = settings
        self.source_name = source_name  # broker_settings.SOURCE_ENVIRONMENT or SOURCE_SAVED
        self.mqtt = mqtt
        self.status = status
        self.redis = client
        self.box = box
        self.on_switch = on_switch
        self.load_session_filters = load_session_filters  # by "<client id>@<host:port>"
        self._switching = threading.Lock()  # one reconnect or switch at a time
        self.probes = RateLimit(PROBES_PER_MINUTE, 60.0)

    def register(self, processor: CommandProcessor) -> None:
        processor.register(protocol.CMD_TEST_CONNECTION, self.test_connection, background=True)
        processor.register(protocol.CMD_RECONNECT, self.reconnect, background=True)
        processor.register(protocol.CMD_CONFIGURE, self.configure, background=True)

    def publish_description(self) -> None:
        """Write the effective settings to KEY_CONNECTION (at start and after each switch)."""
        described = broker_settings.describe(self.settings, self.source_name)
        self.redis.set(self.settings.names.KEY_CONNECTION, protocol.dumps(described))

    # --- handlers (background threads) -----------------------------------------------------
    def _probe_allowed(self) -> None:
        wait = self.probes.take()
        if wait is not None:
            raise InvalidCommand(
                f"too many connection tests: this bridge runs at most {PROBES_PER_MINUTE} a minute; "
                f"try again in {max(1, round(wait))} s"
            )

    def test_connection(self, command: protocol.Command) -> Answer:
        candidate = broker_settings.from_command(command.args, self.settings, self.box)
        self._probe_allowed()
        found = probe(Endpoint.from_settings(candidate), self.settings.client_id)
        logger.info("connection test of %s: %s", candidate.broker, found.outcome)
        result = found.as_result() | {"broker": candidate.broker}
        return Answer(None if found.ok else found.sentence, result)

    def reconnect(self, command: protocol.Command) -> Answer:
        if command.args:
            raise InvalidCommand(f"cmd_reconnect takes no fields; got {', '.join(sorted(command.args))}")
        return self._switch(self.settings, self.source_name, "reconnect", command.id)

    def configure(self, command: protocol.Command) -> Answer:
        args = dict(command.args)
        reset = args.pop("reset", False)
        if not isinstance(reset, bool):
            raise InvalidCommand("reset must be true or false")
        if reset:
            if args:
                raise InvalidCommand("reset: true takes no other settings")
            self.redis.delete(self.settings.names.KEY_BROKER_SETTINGS)
            return self._switch(self.env_settings, broker_settings.SOURCE_ENVIRONMENT, "reset", command.id)
        if self.settings.group:
            # Every member would test the new broker on its own, and one whose test failed would
            # stay behind while the leader answered "switched": the group would be split.
            raise InvalidCommand(
                "a bridge group does not switch brokers at run time (each member would test the "
                "new settings on its own, and one that failed would stay behind); change the "
                "members' environment and restart them one by one"
            )
        candidate = broker_settings.from_command(args, self.settings, self.box)
        record = broker_settings.saved_record(candidate, self.box)  # refuses a password without a key
        self._probe_allowed()
        found = probe(Endpoint.from_settings(candidate), self.settings.client_id)
        if not found.ok:
            return Answer(
                f"not switched: the test failed: {found.sentence}",
                found.as_result() | {"broker": candidate.broker, "switched": False},
            )
        self.redis.set(self.settings.names.KEY_BROKER_SETTINGS, record)
        answer = self._switch(candidate, broker_settings.SOURCE_SAVED, "configure", command.id)
        return Answer(answer.error, found.as_result() | dict(answer.result or {}))

    # --- the switch ----------------------------------------------------------------------------
    def _switch(self, settings: Settings, source_name: str, action: str, command_id: str | None) -> Answer:
        if not self._switching.acquire(timeout=10):
            return Answer("another reconnect or switch is still under way; try again shortly")
        try:
            before = self.settings.broker
            if settings.broker != before or settings.client_id != self.settings.client_id:
                # Another broker holds another session: take up what the bridge recorded of it.
                session = SessionFilters()
                if self.load_session_filters is not None:
                    try:
                        session.load(self.load_session_filters(f"{settings.client_id}@{settings.broker}"))
                    except redis.RedisError as exc:
                        logger.warning("cannot read the new broker's session record: %s", type(exc).__name__)
                self.mqtt.session = session
            started = time.monotonic()
            logger.info("%s: %s -> %s", action, before, settings.broker)
            self.settings, self.source_name = settings, source_name
            self.status.broker = settings.broker
            self.on_switch(settings)
            self.mqtt.restart(settings, f"{_verb(action)} {settings.broker} ({_command_name(action)})")
            connected = self.mqtt.wait_connected(CONNECT_WAIT)
            entry: dict[str, Any] = {
                "action": action,
                "command_id": command_id,
                "from": before,
                "to": settings.broker,
                "source": source_name,
                "connected": connected,
            }
            try:
                broker_settings.record_switch(self.redis, entry, self.settings.names)
                self.publish_description()
            except redis.RedisError as exc:
                logger.warning("could not record the %s: %s", action, type(exc).__name__)
            result = {
                "switched": True,
                "broker": settings.broker,
                "source": source_name,
                "connected": connected,
                "seconds": round(time.monotonic() - started, 3),
            }
            if not connected:
                return Answer(
                    f"{settings.broker} is not connected yet after {CONNECT_WAIT:g} s; "
                    "the bridge keeps trying",
                    result,
                )
            return Answer(None, result)
        finally:
            self._switching.release()


def _verb(action: str) -> str:
    return {"reconnect": "reconnecting to", "reset": "switching back to"}.get(action, "switching to")


def _command_name(action: str) -> str:
    return {"reconnect": "cmd_reconnect", "reset": "cmd_configure reset"}.get(action, "cmd_configure")
