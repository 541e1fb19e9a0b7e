"""Commands from ``mqtt:commands``: publish, subscribe, unsubscribe — each answered on
``mqtt:commands:results`` with the command's id, whatever happens."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import redis

from bridge import protocol
from bridge.backoff import Backoff
from bridge.counters import Counters
from bridge.errors import InvalidCommand
from bridge.group_filters import overlap_sentence
from bridge.group_role import GroupRole
from bridge.mqtt_source import MqttSource
from bridge.redis_sink import RedisSink
from bridge.subscriptions import Subscription, SubscriptionSet

logger = logging.getLogger(__name__)

# Below the dashboard's default wait (DASHBOARD_COMMAND_TIMEOUT, 5 s), so a stalled broker gets
# the bridge's own "not acknowledged" answer rather than a "bridge did not answer".
PUBLISH_ACK_TIMEOUT = 3.0


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
        # In a bridge group every member hears every command: subscriptions change on every
        # member (each holds its own share), everything else runs on the leader only, and only
        # the leader answers.
        self.group = group
        self._answering = True

    def handle(self, raw: bytes | str) -> dict[str, Any] | None:
        """Answer one raw command; never raises for bad input. None: not this member's to answer."""
        self._answering = self.group is None or self.group.leading()  # decided once per command
        try:
            command = protocol.parse_command(raw)
        except InvalidCommand as exc:
            return self._answer(exc.command_id, exc.command, str(exc)) if self._answering else None
        if not self._answering and command.type not in (protocol.CMD_SUBSCRIBE, protocol.CMD_UNSUBSCRIBE):
            return None  # the leader's to run, once
        try:
            error = self._expired(command)
            if error is None:
                error = self.execute(command)
        except redis.RedisError as exc:
            error = f"could not update Redis: {type(exc).__name__}"
        except Exception:  # a bug must cost one command, not the command thread
            logger.exception("command %s failed unexpectedly", command.type)
            error = "internal error in the bridge (see its log)"
        return self._answer(command.id, command.type, error) if self._answering else None

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

    def _answer(self, command_id: str | None, command: str | None, error: str | None) -> dict[str, Any]:
        if error is None:
            self.counters.commands_ok += 1
        else:
            self.counters.commands_failed += 1
            logger.info("command %s (id %s) failed: %s", command or "?", command_id, error)
        return protocol.command_result(command_id, command, error is None, error)

    def execute(self, command: protocol.Command) -> str | None:
        if command.type == protocol.CMD_PUBLISH:
            if self.group is not None and not self.group.holds_lease():
                # Leadership moved while this command waited: the new leader has it too.
                return "this bridge member lost the group's leadership before it could publish; not published"
            return self.source.publish(
                command.topic, command.payload, command.qos, command.retain, PUBLISH_ACK_TIMEOUT
            )
        if command.type == protocol.CMD_SUBSCRIBE:
            return self._subscribe(command.topic, command.qos)
        return self._unsubscribe(command.topic)

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
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(protocol.CHANNEL_COMMANDS)
                if outage:
                    logger.info("command channel is back")
                    outage = False
                self.backoff.reset()
                self.ready.set()
                while not self.stop_event.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        self._answer(message["data"])
            except (redis.ConnectionError, redis.TimeoutError) as exc:
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
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()

    def _answer(self, raw: bytes) -> None:
        result = self.processor.handle(raw)
        if result is None:
            return  # a bridge group's follower: the leader answers
        try:
            self.processor.sink.reply(result)
        except (redis.RedisError, ValueError) as exc:  # ValueError: text Redis cannot carry
            logger.warning("could not send the result of command %r: %s", result.get("id"), exc)
