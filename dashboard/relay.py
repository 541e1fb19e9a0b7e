"""The relay: one per worker process, from the bridge's Redis channels to this worker's browsers.

It subscribes to ``protocol.OUTPUT_CHANNELS`` and, by pattern, to every named bridge's copies of
them (``mqtt:brokers:*:messages`` …), so a bridge started later is relayed without a restart.
It forwards snapshots (status, stats, clients, topics) at once to the room of their broker,
batches MQTT messages into frames every frame interval in their broker's own router, and watches
the heartbeat of every broker a browser here watches. It reconnects with capped backoff and logs
one line per outage.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import redis
from flask_socketio import SocketIO

from bridge.contract import redis_topology
from bridge.contract.backoff import Backoff
from bridge.contract.protocol import (
    CHANNEL_CLIENTS,
    CHANNEL_MESSAGES,
    CHANNEL_SESSION_REVOKED,
    CHANNEL_STATS,
    CHANNEL_STATUS,
    CHANNEL_TOPICS,
    OUTPUT_CHANNELS,
    UNNAMED_BROKER,
    broker_of_channel,
    loads_object,
    names_for,
    per_broker_name,
)
from dashboard.backlog import SocketBacklog
from dashboard.frames import BrokerRouters, FrameRouter, broker_room
from dashboard.metrics import DashboardMetrics
from dashboard.store import Store, bridge_health
from dashboard.tenant_rooms import TenantRooms

logger = logging.getLogger(__name__)

EVENTS = {
    CHANNEL_STATUS: "broker_status",
    CHANNEL_STATS: "broker_stats",
    CHANNEL_CLIENTS: "clients_update",
    CHANNEL_TOPICS: "topics_update",
}
HEALTH_POLL = 1.0  # seconds between heartbeat reads
HEALTH_EVERY = 5.0  # bridge_health is re-sent this often even when nothing changed
# Under gevent, get_message(timeout=0) returns without yielding while replies are buffered;
# yield after this many messages so the other greenlets (the browsers' sockets) get a turn.
YIELD_EVERY = 50
# Every named bridge's output channels ("*" stands for the bridge name; broker_of_channel checks it).
NAMED_PATTERNS = tuple(per_broker_name(channel, "*") for channel in OUTPUT_CHANNELS)


class Relay:
    def __init__(
        self,
        socketio: SocketIO,
        client: redis.Redis,
        router: FrameRouter,
        metrics: DashboardMetrics,
        *,
        frame_interval: float,
        where: str,
        enabled: bool = True,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Any] | None = None,
        client_buffer: int | None = None,
        backlog: Callable[[str], int] | None = None,
        on_session_revoked: Callable[[str], Any] | None = None,
        routers: BrokerRouters | None = None,
        tenant_rooms: TenantRooms | None = None,
    ):
        self.socketio = socketio
        self.redis = client
        self.store = Store(client)
        self.router = router  # the unnamed broker's
        self.routers = routers or BrokerRouters(router)
        self.metrics = metrics
        self.frame_interval = frame_interval
        self.where = where
        self.enabled = enabled
        self.backoff = backoff or Backoff(base=0.5, cap=10.0, jitter=0.2)
        self._sleep = sleep or socketio.sleep
        # A client with more than this many bytes queued gets no frames until it catches up.
        self.client_buffer = client_buffer
        self.backlog = backlog or SocketBacklog(socketio)
        self.on_session_revoked = on_session_revoked
        self.on_user_revoked: Callable[[str], Any] | None = None
        self.tenant_rooms = tenant_rooms  # tenant users' sockets get their cut of every event
        self._pid: int | None = None
        self._stopped = False
        self._last_online: dict[str, bool] = {}
        self._last_health_sent: dict[str, float] = {}
        self._warned_channels: set[str] = set()

    # --- lifecycle ------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start this process's relay once; a forked worker starts its own."""
        if not self.enabled or self._pid == os.getpid():
            return
        # Set before spawning: the check and the set cannot be interleaved by another greenlet.
        self._pid = os.getpid()
        self._stopped = False
        self.socketio.start_background_task(self.run)

    def stop(self) -> None:
        self._stopped = True

    def run(self) -> None:
        """Subscribe, pump, and on losing Redis retry with backoff until stopped."""
        outage_since: float | None = None
        while not self._stopped:
            pubsub = None
            try:
                # After an outage, a cluster's node map is refreshed first (its node may be gone).
                pubsub = redis_topology.subscriber(
                    self.redis, fresh=outage_since is not None, ignore_subscribe_messages=True
                )
                pubsub.subscribe(*OUTPUT_CHANNELS, CHANNEL_SESSION_REVOKED)
                pubsub.psubscribe(*NAMED_PATTERNS)
                if outage_since is None:
                    logger.info(
                        "relay (pid %d) subscribed to the bridge's channels on Redis at %s",
                        os.getpid(),
                        self.where,
                    )
                else:
                    logger.info(
                        "relay reconnected to Redis at %s after %.1f s",
                        self.where,
                        time.monotonic() - outage_since,
                    )
                    self.metrics.relay_reconnects.inc()
                    outage_since = None
                self.backoff.reset()
                self.metrics.relay_connected.set(1)
                self._pump(pubsub)
            except redis.RedisError as exc:
                self.metrics.relay_connected.set(0)
                if outage_since is None:
                    outage_since = time.monotonic()
                    logger.warning(
                        "relay lost Redis at %s (%s); retrying with backoff up to %g s",
                        self.where,
                        exc,
                        self.backoff.cap,
                    )
                    for broker in self.routers.brokers_watched():
                        self._send_health(broker, bridge_health(None, None) | {"redis": False})
                self._sleep(self.backoff.next_delay())
            except Exception:
                # A bug must not end relaying for good: log it with its traceback, start over.
                logger.exception("relay failed unexpectedly; restarting it")
                self.metrics.relay_connected.set(0)
                self._sleep(self.backoff.next_delay())
            finally:
                if pubsub is not None:
                    _close_quietly(pubsub)
        self.metrics.relay_connected.set(0)

    def _pump(self, pubsub: Any) -> None:
        now = time.monotonic()
        next_flush = now + self.frame_interval
        next_health = now  # at once: a fresh worker learns the bridge's state straight away
        handled = 0
        while not self._stopped:
            wait = max(0.0, min(next_flush, next_health) - time.monotonic())
            message = pubsub.get_message(timeout=wait)
            if message is not None:
                self.handle(message.get("channel"), message.get("data"))
                handled += 1
                if handled % YIELD_EVERY == 0:
                    self._sleep(0)
            now = time.monotonic()
            if now >= next_flush:
                self.flush()
                next_flush = now + self.frame_interval
                self._sleep(0)
            if now >= next_health:
                self.check_health()
                next_health = now + HEALTH_POLL

    # --- one step each (the unit tests drive these directly) ------------------------------------
    def handle(self, channel: Any, data: Any) -> None:
        """One pub/sub message: queue it for the frames, or forward it as its event."""
        self.metrics.relay_received.inc()
        message = loads_object(data)
        if message is None:
            self._invalid(channel, data)
            return
        if channel == CHANNEL_SESSION_REVOKED:
            key, user = message.get("session"), message.get("user")
            if isinstance(key, str) and self.on_session_revoked is not None:
                self.on_session_revoked(key)
            if isinstance(user, str) and self.on_user_revoked is not None:
                self.on_user_revoked(user)
            return
        found = broker_of_channel(channel) if isinstance(channel, str) else None
        if found is None:
            return
        broker, unnamed = found
        if unnamed == CHANNEL_MESSAGES:
            router = self.routers.get(broker)
            if router is not None:  # nobody here watches that broker: nothing to buffer
                router.add(message)
            return
        event = EVENTS.get(unnamed)
        if event is not None:
            self.socketio.emit(event, message, to=broker_room(broker))
            if self.tenant_rooms is not None:
                self.tenant_rooms.emit(event, message, broker)

    def flush(self) -> None:
        """Send each filter's waiting messages as one frame to its room, except to clients that
        are behind: they are skipped, and their next frame counts what they missed."""
        for router in self.routers.all():
            self._flush(router)

    def _flush(self, router: FrameRouter) -> None:
        for frame in router.take_frames():
            members = router.members(frame.topic_filter)
            behind = self._behind(members)
            owed = {sid: n for sid in members - behind if (n := router.take_withheld(sid))}
            skip = behind | owed.keys()
            if len(skip) < len(members):
                self.socketio.emit("mqtt_messages", frame.data, to=frame.room, skip_sid=list(skip) or None)
            for sid, missed in owed.items():
                # Caught up again: this one frame, on its own, also counts the withheld messages.
                data = {"messages": frame.data["messages"], "skipped": frame.data["skipped"] + missed}
                self.socketio.emit("mqtt_messages", data, to=sid)
                self.metrics.messages_skipped.inc(missed)
            for sid in behind:
                router.withhold(sid, frame.message_count + frame.data["skipped"])
            sent = len(members) - len(behind)
            self.metrics.frames_sent.inc(sent)
            self.metrics.frames_withheld.inc(len(behind))
            self.metrics.messages_sent.inc(frame.message_count * sent)
            self.metrics.messages_skipped.inc(frame.data["skipped"] * sent)

    def _behind(self, members: frozenset[str]) -> frozenset[str]:
        if self.client_buffer is None:
            return frozenset()
        behind = frozenset(sid for sid in members if self.backlog(sid) > self.client_buffer)
        for sid in behind:
            logger.debug("withholding a frame from %s: over %d bytes queued", sid, self.client_buffer)
        return behind

    def check_health(self) -> None:
        """Read the heartbeats of the brokers watched here; send each one's bridge_health to its
        room on a change of state, or when it is due."""
        for broker in self.routers.brokers_watched():
            store = self.store if broker == UNNAMED_BROKER else Store(self.redis, names_for(broker))
            try:
                health = store.bridge_health()
            except redis.ResponseError as exc:
                # One broker's damaged keys: that broker is unreadable; the relay, and every
                # other broker's viewers, carry on (it once restarted twice a second instead).
                health = bridge_health(None, None, problem=f"its keys in Redis cannot be read ({exc})")
            last = self._last_online.get(broker)
            due = time.monotonic() - self._last_health_sent.get(broker, float("-inf")) >= HEALTH_EVERY
            if due or health["online"] != last:
                if last is not None and health["online"] != last:
                    state = "online" if health["online"] else "offline (no fresh heartbeat)"
                    logger.info("bridge %s is %s", broker, state)
                self._send_health(broker, health | {"redis": True})

    def _send_health(self, broker: str, health: dict[str, Any]) -> None:
        self._last_online[broker] = health["online"]
        self._last_health_sent[broker] = time.monotonic()
        self.socketio.emit("bridge_health", health, to=broker_room(broker))
        if self.tenant_rooms is not None:
            self.tenant_rooms.emit("bridge_health", health, broker)

    def _invalid(self, channel: Any, data: Any) -> None:
        self.metrics.relay_invalid.inc()
        # One warning per channel; the rest only at DEBUG, so a noisy publisher cannot flood the log.
        key = str(channel)
        level = logging.DEBUG if key in self._warned_channels else logging.WARNING
        self._warned_channels.add(key)
        logger.log(level, "dropped a message on %s that is not a JSON object: %.80r", key, data)


def _close_quietly(pubsub: Any) -> None:
    try:
        pubsub.close()
    except (redis.RedisError, OSError):
        logger.debug("closing the relay's pub/sub connection failed", exc_info=True)
