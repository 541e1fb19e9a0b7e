"""Commands from ``mqtt:commands``, each answered on ``mqtt:commands:results`` with the
command's id, whatever happens.

Publish, subscribe and unsubscribe are built in; other commands are registered by the modules
that carry them out (``CommandProcessor.register``). A command that may take long (one that waits
for another connection, say) is registered ``background=True`` and runs on a thread of its own,
so the commands behind it are not held up; it is answered when it is done.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from bridge.contract import mqtt5_properties, protocol, redis_topology
from bridge.contract.backoff import Backoff
from bridge.contract.errors import InvalidCommand
from bridge.group.filters import overlap_sentence
from bridge.group.role import GroupRole
from bridge.ingest.counters import Counters
from bridge.ingest.mqtt_source import MqttSource
from bridge.ingest.outgoing import UnknownOutcome
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import Subscription, SubscriptionSet

logger = logging.getLogger(__name__)

# Below the dashboard's default wait (DASHBOARD_COMMAND_TIMEOUT, 5 s), so a stalled broker gets
# the bridge's own "not acknowledged" answer rather than a "bridge did not answer".
PUBLISH_ACK_TIMEOUT = 3.0
# Background commands running at once at most; one more is refused with a sentence, not queued
# (each holds a thread and, for a connection test, a socket).
BACKGROUND_LIMIT = 4
# In a bridge group, the commands every member carries out (each holds its own share of the
# subscriptions and its own connection); the leader alone answers them. Every other command runs
# on the leader only, once.
EVERY_MEMBER_COMMANDS = frozenset(
    (
        protocol.CMD_SUBSCRIBE,
        protocol.CMD_UNSUBSCRIBE,
        protocol.CMD_PAUSE_SUBSCRIPTION,
        protocol.CMD_RESUME_SUBSCRIPTION,
        protocol.CMD_RECONNECT,
        protocol.CMD_CONFIGURE,
    )
)


@dataclass(frozen=True)
class Answer:
    """What a command handler returns when it has data for the ``result`` object. An ``error``
    that is an ``UnknownOutcome`` makes the answer say ``outcome: unknown`` (it may have happened)."""

    error: str | None = None
    result: Mapping[str, Any] | None = None


# A handler returns an error sentence, None for success, or an Answer.
Handler = Callable[[protocol.Command], "str | Answer | None"]


class CommandProcessor:
    """Carries out one command at a time and builds its answer (no pub/sub loop: testable)."""

    def __init__(
        self,
        source: MqttSource,
        subscriptions: SubscriptionSet,
        sink: RedisSink,
        counters: Counters,
        group: GroupRole | None = None,
    ):
        self.source = source
        self.subscriptions = subscriptions
        self.sink = sink
        self.counters = counters
        self._handlers: dict[str, Handler] = {
            protocol.CMD_PUBLISH: self._publish,
            protocol.CMD_SUBSCRIBE: lambda command: self._subscribe(command.topic, command.qos),
            protocol.CMD_UNSUBSCRIBE: lambda command: self._unsubscribe(command.topic),
        }
        self._background: set[str] = set()
        self._background_slots = threading.BoundedSemaphore(BACKGROUND_LIMIT)
        self._counter_lock = threading.Lock()  # background answers count from their own threads
        # In a bridge group every member hears every command: subscriptions and the connection
        # change on every member (each holds its own share), everything else runs on the leader
        # only, and only the leader answers.
        self.group = group
        self._answering = True  # this command's answer is this member's to give (main thread)

    def register(self, kind: str, handler: Handler, *, background: bool = False) -> None:
        """Carry out commands of type ``kind`` with ``handler``; ``background`` ones on a thread
        of their own (their answer is sent from there, by ``handle``'s caller's sink)."""
        if kind not in protocol.COMMAND_TYPES:
            raise ValueError(f"{kind!r} is not a command type of the contract")
        self._handlers[kind] = handler
        (self._background.add if background else self._background.discard)(kind)

    def handle(self, raw: bytes | str) -> dict[str, Any] | None:
        """Answer one raw command; never raises for bad input. None when the command went to a
        background thread, which sends the answer itself when it is done, or when it is not this
        member's to answer (a bridge group's follower)."""
        answering = self.group is None or self.group.leading()  # decided once per command
        try:
            command = protocol.parse_command(raw)
        except InvalidCommand as exc:
            return self._answer(exc.command_id, exc.command, str(exc)) if answering else None
        if not answering and command.type not in EVERY_MEMBER_COMMANDS:
            return None  # the leader's to run, once
        if command.type in self._background and self._expired(command) is None:
            if not self._background_slots.acquire(blocking=False):
                busy = f"the bridge is already running {BACKGROUND_LIMIT} long commands; try again shortly"
                return self._answer(command.id, command.type, busy) if answering else None
            threading.Thread(
                target=self._run_in_background,
                args=(command, answering),
                name=f"command-{command.type}",
                daemon=True,
            ).start()
            return None
        self._answering = answering
        return self._run(command, answering)

    def _run_in_background(self, command: protocol.Command, answering: bool) -> None:
        try:
            result = self._run(command, answering)
            if result is None:
                return
            try:
                self.sink.reply(result)
            except (redis.RedisError, ValueError) as exc:
                logger.warning("could not send the result of command %r: %s", command.id, exc)
        finally:
            self._background_slots.release()

    def _run(self, command: protocol.Command, answering: bool = True) -> dict[str, Any] | None:
        answer = Answer()
        try:
            error = self._expired(command)
            answer = Answer(error) if error is not None else self.execute(command)
        except InvalidCommand as exc:  # a handler's own check of the command's args
            answer = Answer(str(exc))
        except redis.RedisError as exc:
            answer = Answer(f"could not update Redis: {type(exc).__name__}")
        except Exception:  # a bug must cost one command, not the command thread
            logger.exception("command %s failed unexpectedly", command.type)
            answer = Answer("internal error in the bridge (see its log)")
        if not answering:
            return None
        return self._answer(command.id, command.type, answer.error, answer.result)

    def _expired(self, command: protocol.Command) -> str | None:
        """Why a command is too late to run, or None. Checked just before running, since commands
        queue behind one another (each may wait seconds for the broker) while the sender has
        a deadline of its own: a command it has given up on must not actuate a device later."""
        if command.expires_at is None:
            return None
        now = self.sink.server_time()
        if now <= command.expires_at:
            return None
        return (
            f"the command expired {now - command.expires_at:.1f} s before the bridge could run it "
            "(expires_at passed); it was not run"
        )

    def _answer(
        self,
        command_id: str | None,
        command: str | None,
        error: str | None,
        result: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self._counter_lock:
            if error is None:
                self.counters.commands_ok += 1
            else:
                self.counters.commands_failed += 1
        if error is not None:
            logger.info("command %s (id %s) failed: %s", command or "?", command_id, error)
        outcome = protocol.OUTCOME_UNKNOWN if isinstance(error, UnknownOutcome) else None
        return protocol.command_result(command_id, command, error is None, error, result, outcome)

    def execute(self, command: protocol.Command) -> Answer:
        handler = self._handlers.get(command.type)
        if handler is None:
            supported = ", ".join(sorted(self._handlers))
            return Answer(f"this bridge does not carry out {command.type} (it carries out {supported})")
        if (
            command.type not in EVERY_MEMBER_COMMANDS
            and self.group is not None
            and not self.group.holds_lease()
        ):
            # Leadership moved while this command waited: the new leader has it too.
            return Answer(
                f"this bridge member lost the group's leadership before it could run {command.type}; not run"
            )
        outcome = handler(command)
        return outcome if isinstance(outcome, Answer) else Answer(outcome)

    def _publish(self, command: protocol.Command) -> str | None:
        properties = mqtt5_properties.validate(command.args.get("properties"))
        return self.source.publish(
            command.topic, command.payload, command.qos, command.retain, PUBLISH_ACK_TIMEOUT, properties
        )

    def _subscribe(self, topic_filter: str, qos: int) -> str | None:
        if self.subscriptions.is_configured(topic_filter):
            return None  # already subscribed by MQTT_TOPICS: nothing to do, nothing to store
        if self.group is not None:
            overlap = overlap_sentence(topic_filter, [s.filter for s in self.subscriptions.all()])
            if overlap:
                return overlap
        store = self._answering  # in a group the leader keeps mqtt:subscriptions, once
        before = dict(self.subscriptions.broker_filters())
        created = time.time()
        if store:
            self.sink.save_subscription(topic_filter, qos, created)  # first: a failure leaves no trace
        self.subscriptions.add(Subscription(topic_filter, qos, created, "command"))
        error = self.apply(before)
        if error is not None:
            # The broker said no (an ACL, say): forget it rather than retry it on every connect.
            self.subscriptions.remove(topic_filter)
            if store:
                self.sink.delete_subscription(topic_filter)
            self.apply(dict(self.subscriptions.broker_filters()) | {topic_filter: qos})
        elif self.group is not None and store:
            self.source.sweep_retained([topic_filter])  # its retained messages, forwarded once
        return error

    def _unsubscribe(self, topic_filter: str) -> str | None:
        if self.subscriptions.is_configured(topic_filter):
            return (
                f"{topic_filter!r} comes from MQTT_TOPICS (the bridge's configuration) and stays subscribed"
            )
        before = dict(self.subscriptions.broker_filters())
        if not self.subscriptions.remove(topic_filter):
            return f"the bridge is not subscribed to {topic_filter!r}"
        if self._answering:
            self.sink.delete_subscription(topic_filter)
        return self.apply(before)

    def apply(self, before: dict[str, int]) -> str | None:
        """Bring the broker's subscriptions in line with the set. While disconnected there is
        nothing to do: every connect subscribes the whole set."""
        if not self.source.is_connected():
            return None
        after = dict(self.subscriptions.broker_filters())
        for topic_filter, qos in after.items():
            if before.get(topic_filter) != qos:
                error = self.source.subscribe(topic_filter, qos)
                if error is not None:
                    return error
        for topic_filter in before.keys() - after.keys():
            error = self.source.unsubscribe(topic_filter)
            if error is not None:
                return error
        return None


class CommandListener(threading.Thread):
    """Reads the command channel with ``get_message(timeout=…)``; survives Redis outages."""

    def __init__(
        self,
        client: redis.Redis,
        processor: CommandProcessor,
        stop: threading.Event,
        backoff: Backoff | None = None,
    ):
        super().__init__(name="command-listener", daemon=True)
        self.client = client
        self.processor = processor
        self.stop_event = stop
        self.backoff = backoff or Backoff(base=0.5, cap=10.0)
        self.ready = threading.Event()  # set while subscribed (tests and start-up wait on it)

    def run(self) -> None:
        outage = False
        while not self.stop_event.is_set():
            pubsub = None
            try:
                # After an outage, a cluster's node map is refreshed first (its node may be gone).
                pubsub = redis_topology.subscriber(self.client, fresh=outage, ignore_subscribe_messages=True)
                pubsub.subscribe(self.processor.sink.names.CHANNEL_COMMANDS)
                if outage:
                    logger.info("command channel is back")
                    outage = False
                self.backoff.reset()
                self.ready.set()
                while not self.stop_event.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        self._answer(message["data"])
            except redis_topology.UNREACHABLE as exc:
                self.ready.clear()
                if not outage:
                    logger.error("command channel lost (%s); reconnecting with backoff", type(exc).__name__)
                    outage = True
                self.backoff.wait(self.stop_event)
            except Exception:
                # Anything else (Redis refusing SUBSCRIBE, a bug) must not end command handling
                # for good while the heartbeat still says the bridge is healthy: start over.
                self.ready.clear()
                logger.exception("command listener failed; restarting it")
                self.backoff.wait(self.stop_event)
            finally:
                self.ready.clear()
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError):
                        pubsub.close()

    def _answer(self, raw: bytes) -> None:
        result = self.processor.handle(raw)
        if result is None:  # a background command (its own thread answers) or a group follower
            return
        try:
            self.processor.sink.reply(result)
        except (redis.RedisError, ValueError) as exc:  # ValueError: text Redis cannot carry
            logger.warning("could not send the result of command %r: %s", result.get("id"), exc)
