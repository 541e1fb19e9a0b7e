"""Wires the bridge together and runs it: source -> writer -> Redis, plus commands and housekeeping.

Threads: paho's network thread (MQTT in), ``redis-writer`` (batches to Redis), ``command-listener``
(mqtt:commands), ``housekeeping`` (status, stats, clients, topics, heartbeat). Each catches its
own errors and starts over with a backoff; the main thread supervises them (``supervise``) and
ends the process with EXIT_THREAD_DIED if one dies anyway, so Docker or systemd restart it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import redis

from bridge.config import Settings
from bridge.contract import protocol, redis_topology
from bridge.contract.backoff import Backoff
from bridge.contract.errors import InvalidCommand
from bridge.contract.secret_box import SecretBox
from bridge.control import broker_settings
from bridge.control.broker_confirmation import BrokerConfirmation
from bridge.control.broker_settings import SOURCE_ENVIRONMENT, SOURCE_SAVED
from bridge.control.commands import CommandListener, CommandProcessor
from bridge.control.connection_commands import ConnectionCommands
from bridge.control.dynsec import DynsecClient
from bridge.control.retained import RetainedClearer
from bridge.control.subscription_control import FilterStats, SubscriptionPause
from bridge.group.role import GroupRole
from bridge.group.session_adopter import SessionAdopter
from bridge.ingest import heap, redis_sink, wire
from bridge.ingest.counters import Counters
from bridge.ingest.mqtt_source import Item, LinkEvent, MqttSource
from bridge.ingest.queue import IngestQueue
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import Subscription, SubscriptionSet
from bridge.ingest.writer import Writer
from bridge.insight.housekeeping import Housekeeper
from bridge.insight.metrics import BridgeCollector, serve
from bridge.insight.status import BrokerStatus
from bridge.insight.topics import TopicIndex

logger = logging.getLogger(__name__)

# The exit status when a thread the bridge cannot work without has died (EX_SOFTWARE, sysexits.h):
# non-zero, so a supervisor (Docker's restart policy, systemd's Restart=on-failure) restarts it.
EXIT_THREAD_DIED = 70
SUPERVISE_INTERVAL = 1.0  # seconds between the main thread's looks at the others


def _with_timeout(client: redis.Redis, seconds: float) -> redis.Redis:
    """A client like ``client`` (same server, same credentials) that gives up after ``seconds``."""
    if redis_topology.made(client):  # Sentinel and Cluster clients are rebuilt from their settings
        made: redis.Redis = redis_topology.with_timeout(client, seconds)
        return made
    kwargs = dict(client.connection_pool.connection_kwargs)
    if "socket_timeout" not in kwargs:  # not a socket connection (fakeredis in tests): as it is
        return client
    kwargs.update(socket_timeout=seconds, socket_connect_timeout=seconds)
    pool = client.connection_pool.__class__(
        connection_class=client.connection_pool.connection_class, **kwargs
    )
    return redis.Redis(connection_pool=pool)


class Bridge:
    def __init__(
        self,
        settings: Settings,
        client: redis.Redis | None = None,
        *,
        backoff: Backoff | None = None,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
    ):
        self.started_at = time.time()
        self.stop_event = threading.Event()
        self.redis = client if client is not None else redis_sink.connect(settings.redis)
        # Broker settings saved by cmd_configure win over the environment's (bridge/broker_settings.py).
        self.env_settings = settings
        self.box = SecretBox.from_setting(settings.config_secret_key)
        saved = self._saved_broker_settings(settings)
        settings = saved or settings
        self.settings = settings
        self.sink = RedisSink(self.redis, settings.history_maxlen, settings.names)
        self.items: deque[Item] = IngestQueue(settings.queue_max_bytes)
        self.counters = Counters(queue_depth=lambda: len(self.items) + self.writer.in_flight)
        self.subscriptions = SubscriptionSet(settings.topics, settings.subscribe_qos)
        self.filter_stats = FilterStats(self.subscriptions)
        self.pauses = SubscriptionPause(self.subscriptions, self.redis, settings.names)
        self.topic_index = TopicIndex(settings.topics_max)
        self.status = BrokerStatus(settings.broker)
        self.group = (
            GroupRole(
                self.redis,
                settings.group,
                settings.member,
                self.started_at,
                client_id=settings.client_id,
                on_member_dead=self._adopt_session,
                names=settings.names,
            )
            if settings.group
            else None
        )
        self.housekeeper = Housekeeper(
            self.sink,
            self.counters,
            self.status,
            self.topic_index,
            threading.Event(),  # stopped first, so the final status is the only one at shutdown
            stats_interval=settings.stats_interval,
            started_at=self.started_at,
            configured_topics=list(settings.topics),
            load_subscriptions=self._load_subscriptions,
            workers_alive=lambda: self.writer.is_alive() and self.commands.is_alive(),
            save_session=self._save_session,
            on_stats_tick=self._write_filter_stats,
            group=self.group,
            sweep_retained=lambda: self.source.sweep_retained(),
            follow_subscriptions=self._follow_subscriptions,
        )
        self.source = MqttSource(
            settings,
            self.counters,
            self.items,
            settings.queue_maxsize,
            self.housekeeper.link_event,
            self.subscriptions.broker_filters,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
        )
        self.dynsec = DynsecClient(
            self.source,
            self.box,
            broker_name=settings.names.broker,
            own_username=lambda: self.source.settings.username,  # follows a switch of settings
        )
        # Which listed clients the broker confirms (mosquitto 2.1's dynamic-security plugin). The
        # plugin has no anonymous admin, so a bridge without a user name has nobody to ask.
        self.confirmation = BrokerConfirmation(
            self.dynsec,
            self.housekeeper.confirmed,
            lambda: self.source.is_connected() and bool(self.settings.username),
            lambda: self.group is None or self.group.leading(),
            self.stop_event,
        )
        self.housekeeper.confirmation = self.confirmation
        self.writer = Writer(
            self.items,
            self.sink,
            self.counters,
            self.topic_index,
            self.housekeeper.sys_messages,
            self.subscriptions.forwards_sys,
            self.stop_event,
            backoff=backoff,
            payload_max_bytes=settings.payload_max_bytes,
            ack=self.source.ack,
            ack_items=self.source.ack_items,
            linger=settings.writer_linger_ms / 1000,
            history_max_bytes=settings.history_max_bytes,
            on_forwarded=self.filter_stats.observe,
            on_control=self.dynsec.on_control,
        )
        self.processor = CommandProcessor(
            self.source, self.subscriptions, self.sink, self.counters, self.group
        )
        self.processor.register(protocol.CMD_DYNSEC, self.dynsec.handle, background=True)
        self.commands = CommandListener(self.redis, self.processor, self.stop_event, backoff=backoff)
        self.connection = ConnectionCommands(
            self.env_settings,
            settings,
            SOURCE_SAVED if saved else SOURCE_ENVIRONMENT,
            self.source,
            self.status,
            self.redis,
            self.box,
            on_switch=self._switched,
            load_session_filters=self.sink.load_session_filters,
        )
        self.connection.register(self.commands.processor)
        self.pauses.register(self.commands.processor)
        RetainedClearer(self.source, self.topic_index, self.stop_event).register(self.commands.processor)

    def _saved_broker_settings(self, env: Settings) -> Settings | None:
        try:
            saved = broker_settings.load_saved(self.redis, env, self.box)
        except redis.RedisError as exc:
            logger.warning(
                "cannot read saved broker settings (%s); using the environment's", type(exc).__name__
            )
            return None
        if saved is not None:
            logger.info("using the broker settings saved from the dashboard: %s", saved.broker)
        return saved

    def _switched(self, settings: Settings) -> None:
        self.settings = settings  # the session name follows the broker

    @property
    def _session_name(self) -> str:
        return f"{self.settings.client_id}@{self.settings.broker}"

    def _save_session(self) -> None:
        """Record which filters the broker holds in the bridge's session (housekeeping thread)."""
        filters = self.source.session.take_change()
        if filters is None:
            return
        try:
            self.sink.save_session_filters(self._session_name, filters)
        except redis.RedisError:
            self.source.session.unsaved()  # try again next tick
            raise

    def _load_session(self) -> None:
        session = self.source.session
        if session.loaded():
            return
        saved = self.sink.load_session_filters(self._session_name)
        session.load(saved)
        if session.resumed_unknown:
            # Connected to a resumed session while Redis was away: drop its stale filters now.
            session.resumed_unknown = False
            for topic_filter in sorted(saved - self.source.connect_filters):
                error = self.source.unsubscribe(topic_filter)
                if error:
                    logger.warning("could not drop stale session filter %r: %s", topic_filter, error)

    def _load_subscriptions(self) -> bool:
        """Restore command-added subscriptions from Redis (retried by housekeeping until it works)."""
        try:
            self._load_session()
            records = self.sink.load_subscriptions()
        except redis.RedisError as exc:
            logger.warning("cannot read saved subscriptions yet (%s); will retry", type(exc).__name__)
            return False
        restored = {}
        for topic_filter, record in records.items():
            try:
                protocol.validate_topic_filter(topic_filter)
            except InvalidCommand as exc:
                logger.warning("ignoring a saved subscription: %s", exc)
                continue
            restored[topic_filter] = Subscription(
                topic_filter, record["qos"], record["created_at"], "command"
            )
        before = set(self.subscriptions.broker_filters())
        self.subscriptions.replace_commands(restored)
        try:
            self.pauses.load()
        except redis.RedisError as exc:
            logger.warning("cannot read paused subscriptions yet (%s); will retry", type(exc).__name__)
            return False
        if restored:
            logger.info("restored %d saved subscriptions", len(restored))
        # Loaded after a connect already subscribed (Redis was down at start): add what it missed.
        if self.source.connect_filters:
            for topic_filter, qos in self.subscriptions.broker_filters():
                if topic_filter in self.source.connect_filters or (topic_filter, qos) in before:
                    continue
                error = self.source.subscribe(topic_filter, qos)
                if error:
                    logger.warning(
                        "could not restore subscription %r: %s (retried on reconnect)", topic_filter, error
                    )
        return True

    def _adopt_session(self, member: str, record: dict[str, Any]) -> None:
        """Leader: take over a dead member's broker session (bridge/session_adopter.py)."""
        client_id = record.get("client_id")
        if not isinstance(client_id, str) or not client_id or client_id == self.settings.client_id:
            return
        SessionAdopter(self.settings, member, client_id, self.sink).start()

    def _write_filter_stats(self) -> None:
        if self.group is None:
            self.filter_stats.write(self.redis, self.settings.names)
        else:
            self.filter_stats.write(
                self.redis, self.settings.names, self.settings.member, self.group.leading()
            )

    def _follow_subscriptions(self) -> None:
        """Bridge group, every member (housekeeping thread): catch up with ``mqtt:subscriptions``
        (which the leader keeps) and the paused filters, in case this member missed a subscribe,
        unsubscribe, pause or resume command (its command channel was down for a moment, say)."""
        wanted = {}
        for topic_filter, record in self.sink.load_subscriptions().items():
            try:
                protocol.validate_topic_filter(topic_filter)
            except InvalidCommand:
                continue
            wanted[topic_filter] = Subscription(topic_filter, record["qos"], record["created_at"], "command")
        held = {s.filter: s.qos for s in self.subscriptions.all() if s.source == "command"}
        before = dict(self.subscriptions.broker_filters())
        filters_changed = held != {f: s.qos for f, s in wanted.items()}
        if filters_changed:
            logger.info(
                "following mqtt:subscriptions: %d filters there, %d held here", len(wanted), len(held)
            )
            self.subscriptions.replace_commands(wanted)
        pauses_changed = self.pauses.follow()  # after the filters: one they brought may be paused
        if pauses_changed:
            logger.info("following the paused filters in Redis")
        if not (filters_changed or pauses_changed):
            return
        error = self.processor.apply(before)
        if error:
            logger.warning("could not follow mqtt:subscriptions: %s (tried again later)", error)

    def start(self) -> None:
        logger.info(
            "mqtt-redis-bridge starting: broker %s, Redis %s, topics %s%s",
            self.settings.broker,
            self.settings.redis.where,
            ", ".join(self.settings.topics) or "(none)",
            # a named bridge says where its names are, for whoever reads Redis next
            (
                f", name {self.settings.bridge_name} (mqtt:brokers:{self.settings.bridge_name}:…)"
                if self.settings.bridge_name
                else ""
            )
            + (
                f", bridge group {self.settings.group!r} as member {self.settings.member!r}"
                if self.group
                else ""
            ),
        )
        wire.warn_if_python()
        heap.tune()  # before the threads allocate (bridge/ingest/heap.py)
        if self.settings.metrics_port:
            serve(
                self.settings.metrics_port,
                BridgeCollector(
                    self.counters, lambda: dict(self.housekeeper.stats.data), self.source.is_connected
                ),
            )
        # Restore saved subscriptions before connecting, so the first SUBSCRIBE includes them;
        # if Redis is not up yet, housekeeping keeps trying.
        self.housekeeper.subscriptions_loaded = self._load_subscriptions()
        try:
            self.connection.publish_description()
        except redis.RedisError as exc:
            logger.warning("could not publish the connection settings: %s", type(exc).__name__)
        self.writer.start()
        self.commands.start()
        self.housekeeper.start()  # after the threads its heartbeat vouches for
        self.source.start()
        self.confirmation.start()

    def dead_thread(self) -> str | None:
        """The name of a thread the bridge cannot work without that has died, or None."""
        for thread in (self.writer, self.commands, self.housekeeper):
            if not thread.is_alive():
                return thread.name
        # paho keeps its network thread in ``_thread`` (paho-mqtt 2.x); None while a reconnect
        # command swaps the client, which is not a death.
        network = getattr(self.source.client, "_thread", None)
        if isinstance(network, threading.Thread) and not network.is_alive():
            return network.name
        return None

    def supervise(self, stop: threading.Event, interval: float = SUPERVISE_INTERVAL) -> int:
        """Main thread, after ``start``: wait until ``stop`` is set (0), or until a thread has died
        (EXIT_THREAD_DIED). The threads start over by themselves after an error; one that died
        met something they could not catch, and a bridge missing a thread must not look alive."""
        while not stop.wait(interval):
            dead = self.dead_thread()
            if dead is not None:
                logger.critical(
                    "the %s thread has died; stopping with exit status %d so that Docker or systemd "
                    "restarts the bridge",
                    dead,
                    EXIT_THREAD_DIED,
                )
                return EXIT_THREAD_DIED
        return 0

    def stop(self, timeout: float = 4.0) -> None:
        """Stop cleanly: leave the broker, flush what is queued, say 'disconnected' last."""
        # One deadline for every step, so a hung Redis or broker cannot stretch the whole; the
        # threads are daemons, so one still stuck in a Redis call does not hold the exit.
        deadline = time.monotonic() + timeout

        def left(reserve: float = 0.6) -> float:
            return max(0.05, deadline - time.monotonic() - reserve)

        logger.info("stopping; %d messages queued", len(self.items))
        self.housekeeper.stop_event.set()
        self.housekeeper.join(min(1.0, left()))
        # Write (and acknowledge) what is queued while still connected, then leave: an
        # acknowledgement sent after the disconnect would be lost, and the message redelivered.
        self.source.pause()
        self.stop_event.set()
        self.writer.join(left(1.6))
        self.source.stop(timeout=min(1.0, left()))
        self.commands.join(min(0.5, left()))
        self.housekeeper.drain_events()
        self.status.apply(LinkEvent(False, "the bridge stopped"))
        # In a group that goes on, another member leads and says the status: nothing to say here.
        last = self.group is None or self._leave_group()
        final = RedisSink(_with_timeout(self.redis, 0.5), self.settings.history_maxlen, self.settings.names)
        try:
            if last:
                final.announce(protocol.CHANNEL_STATUS, self.status.message())
                final.clear_heartbeat()  # gone at once, rather than stale in 15 s
        except redis.RedisError as exc:
            logger.warning("could not publish the final status: %s", type(exc).__name__)
        finally:
            final.client.close()
        self._log_stopped()

    def _leave_group(self) -> bool:
        """Free the lease and leave the member list; True when this was the group's last member."""
        assert self.group is not None
        try:
            return self.group.stop()
        except redis.RedisError as exc:
            logger.warning("could not leave the bridge group cleanly: %s", type(exc).__name__)
            return False

    def _log_stopped(self) -> None:
        logger.info(
            "stopped: %d received, %d forwarded, %d dropped",
            self.counters.received,
            self.counters.forwarded,
            self.counters.dropped,
        )
