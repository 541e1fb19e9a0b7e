"""The housekeeping thread: turns link events and $SYS messages into contract messages, and
keeps the periodic ones going (stats, clients, topics, heartbeat).

It is the only thread that owns the status, stats and client state, so none of them needs a lock.
It must not die: its heartbeat vouches for the bridge. An unexpected error (a bug, a value in
Redis nobody foresaw) is logged with its traceback and the loop starts over after a backoff.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from bridge.contract import protocol, redis_topology
from bridge.contract.backoff import Backoff
from bridge.contract.redis_values import REJECTED, seconds, unix_time
from bridge.group import membership
from bridge.group.role import GroupRole
from bridge.ingest.counters import Counters
from bridge.ingest.mqtt_source import Item, LinkEvent
from bridge.ingest.redis_sink import RedisSink
from bridge.insight.clients import ClientTracker
from bridge.insight.health import heartbeat_body
from bridge.insight.stats_history import StatsHistory
from bridge.insight.status import BrokerStatus
from bridge.insight.sys_stats import SysStats
from bridge.insight.topics import TopicIndex

logger = logging.getLogger(__name__)

# A broker that kept running while the bridge was away has an uptime at least this close to the
# one last seen plus the time gone by ($SYS values come every sys_interval, 10 s by default).
UPTIME_SLACK = 60.0
LISTS_INTERVAL = 10.0  # clients_update and topics_update are republished at least this often
CLIENTS_DEBOUNCE = 1.0  # a burst of connects becomes one clients_update


class Housekeeper(threading.Thread):
    def __init__(
        self,
        sink: RedisSink,
        counters: Counters,
        status: BrokerStatus,
        topic_index: TopicIndex,
        stop: threading.Event,
        *,
        stats_interval: float,
        started_at: float,
        configured_topics: list[str],
        load_subscriptions: Callable[[], bool],
        workers_alive: Callable[[], bool] = lambda: True,
        save_session: Callable[[], None] = lambda: None,
        on_stats_tick: Callable[[], None] = lambda: None,
        group: GroupRole | None = None,
        sweep_retained: Callable[[], str | None] = lambda: None,
        follow_subscriptions: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ):
        super().__init__(name="housekeeping", daemon=True)
        self.sink = sink
        self.counters = counters
        self.status = status
        self.topic_index = topic_index
        self.stop_event = stop
        self.stats_interval = stats_interval
        self.started_at = started_at
        self.configured_topics = configured_topics
        self.load_subscriptions = load_subscriptions
        self.workers_alive = workers_alive
        self.save_session = save_session
        self.on_stats_tick = on_stats_tick  # writes the per-filter statistics
        self.group = group  # None: the single bridge, which does everything itself
        self.sweep_retained = sweep_retained
        self.follow_subscriptions = follow_subscriptions
        self.clock = clock  # this host's wall clock: what the heartbeat is stamped with
        self.backoff = backoff or Backoff(base=0.5, cap=30.0)
        self.restarts = 0  # times the loop started over after an unexpected error
        self._sweep_pending = False  # group leader: fetch retained messages after each connect
        self.events: queue.SimpleQueue[LinkEvent | list[Item]] = queue.SimpleQueue()
        self.stats = SysStats(stale_after=max(12.0, 2.5 * stats_interval))
        self.clients = ClientTracker()
        self.stats_history = StatsHistory(sink.client, stats_interval, sink.names)
        self._status_pending = True
        self.subscriptions_loaded = False
        self._redis_down = False
        self._last_uptime: float | None = None
        self._clients_restored = False
        now = time.monotonic()
        self._due = {"heartbeat": now, "stats": now + stats_interval, "lists": now + 2.0, "clients": 0.0}

    # Producers (paho thread, writer thread) call these; they only enqueue.
    def link_event(self, event: LinkEvent) -> None:
        self.events.put(event)

    def sys_messages(self, items: list[Item]) -> None:
        self.events.put(items)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._step()
            except Exception:
                self.restarts += 1
                delay = self.backoff.next_delay()
                logger.exception(
                    "the housekeeping thread failed (%d times so far); it starts over in %.1f s",
                    self.restarts,
                    delay,
                )
                self.stop_event.wait(delay)
            else:
                self.backoff.reset()

    def _step(self) -> None:
        wait = max(0.0, min(self._due.values()) - time.monotonic())
        try:
            event = self.events.get(timeout=min(wait, 1.0))
        except queue.Empty:
            event = None
        if event is not None:
            self._handle(event)
        self._tick(time.monotonic())

    def _handle(self, event: LinkEvent | list[Item]) -> None:
        if isinstance(event, LinkEvent):
            if self.status.apply(event):
                state = "connected" if event.connected else f"disconnected ({event.reason})"
                logger.info("broker %s: %s", self.status.broker, state)
                self._status_pending = True
                self._sweep_pending = event.connected
            return
        for topic, payload, _qos, _retain, timestamp, *_ in event:
            try:
                if self.stats.update(topic, payload, timestamp):
                    self._watch_restart()
                elif self.clients.update(topic, payload, timestamp):
                    self._due["clients"] = min(self._due["clients"], time.monotonic() + CLIENTS_DEBOUNCE)
            except Exception:  # one odd $SYS line must not stop the others
                logger.exception("could not read %s", topic)

    def _watch_restart(self) -> None:
        uptime = self.stats.data.get("uptime_seconds")
        if isinstance(uptime, int | float):
            if self._last_uptime is not None and uptime < self._last_uptime:
                logger.info("the broker restarted; forgetting its old client list")
                self.clients.clear()
            self._last_uptime = uptime

    def _tick(self, now: float) -> None:
        try:
            try:
                self._run_due(now)
            except redis.ResponseError as exc:
                # Out of memory (maxmemory with noeviction): the heartbeat and status are refused,
                # and the bridge would look dead. Make room in its own history and try again.
                if not str(exc).startswith("OOM") or not self._make_room():
                    raise
                self._due["heartbeat"] = now  # the refused one is due again at once
                self._run_due(now)
            if self._redis_down:
                logger.info("Redis is reachable again; status and stats resume")
                self._redis_down = False
        except redis_topology.ERRORS as exc:
            if not self._redis_down:
                logger.error("cannot update Redis (%s: %s); retrying", type(exc).__name__, exc)
                self._redis_down = True

    def _restore_clients(self) -> None:
        """Take up the client list the last run published; clients connected before this start
        are otherwise unknown until they reconnect (mosquitto 2.0 logs only connects)."""
        names = self.sink.names
        latest = protocol.loads_object(self.sink.client.get(names.KEY_CLIENTS_LATEST))
        stats = protocol.loads_object(self.sink.client.get(names.KEY_STATS_LATEST))
        self._clients_restored = True
        data = stats.get("data") if stats else None
        found = data.get("uptime_seconds") if isinstance(data, dict) else None
        uptime = seconds(found)
        seen_at = unix_time(stats.get("timestamp")) if stats else None
        if found is not None and uptime is None:
            REJECTED.report(f"{names.KEY_STATS_LATEST} uptime_seconds", "not a duration in seconds")
        if stats is not None and seen_at is None:
            REJECTED.report(f"{names.KEY_STATS_LATEST} timestamp", "not a time in Unix seconds")
        if not latest or uptime is None or seen_at is None:
            return  # without the uptime it was seen with, a list cannot be trusted
        # A broker that kept running has at least this uptime now; less means it restarted.
        expected = max(uptime, uptime + max(0.0, time.time() - seen_at) - UPTIME_SLACK)
        if self._last_uptime is not None and self._last_uptime < expected:
            return  # the broker already said: it restarted, its old clients are gone
        restored = self.clients.restore(latest.get("clients"))
        if restored and self._last_uptime is None:
            # The first $SYS uptime decides; _watch_restart forgets the list if it is less.
            self._last_uptime = expected
        if restored:
            logger.info("took up the last client list (%d clients) until the broker says otherwise", restored)

    def _make_room(self) -> bool:
        made = self.sink.make_room()
        if made is None:
            logger.error("Redis is out of memory and mqtt:history has nothing left to give")
            return False
        logger.warning("Redis is out of memory: trimmed mqtt:history from %d to about %d entries", *made)
        return True

    def _announce(self, channel: str, message: dict[str, Any]) -> None:
        if self.group is None:
            self.sink.announce(channel, message)
        else:
            self.group.announce(channel, message)  # only while leading, fenced

    def _leads(self) -> bool:
        return self.group is None or self.group.leading()

    def _run_due(self, now: float) -> None:
        if self.group is not None and self.group.tick():
            # Just became the leader: say the status, stats and lists now, not in 10 s.
            self._status_pending = True
            self._sweep_pending = True
            self._due.update(stats=now, lists=now, heartbeat=now)
        if self._sweep_pending and self.group is not None and self.group.leading() and self.status.connected:
            self._sweep_pending = False
            error = self.sweep_retained()
            if error:
                logger.warning("%s", error)
        if not self._clients_restored:
            self._restore_clients()
        if not self.subscriptions_loaded:
            self.subscriptions_loaded = self.load_subscriptions()
        self.save_session()
        if self._status_pending:
            if self._leads():
                self._announce(protocol.CHANNEL_STATUS, self.status.message())
            self._status_pending = False
        if now >= self._due["heartbeat"]:
            self._due["heartbeat"] = now + protocol.HEARTBEAT_INTERVAL
            if self.workers_alive():
                self.send_heartbeat()
            else:
                # A heartbeat must not vouch for a bridge that no longer forwards or answers:
                # let it go stale, so healthchecks (and the dashboard) see the bridge as down.
                logger.error("a bridge thread has stopped; withholding the heartbeat")
        if now >= self._due["stats"]:
            self._due["stats"] = now + self.stats_interval
            if (self.status.connected or self.stats.data) and self._leads():
                message = self.stats_message()
                self._announce(protocol.CHANNEL_STATS, message)
                self.stats_history.record(message)
            self.on_stats_tick()
        if now >= self._due["lists"]:
            self._due["lists"] = now + LISTS_INTERVAL
            self._due["clients"] = now + LISTS_INTERVAL
            if self.group is not None and self.subscriptions_loaded:
                self.follow_subscriptions()
            if self._leads():
                self._announce(protocol.CHANNEL_TOPICS, self.topics_message())
                self._announce(protocol.CHANNEL_CLIENTS, self.clients_message())
        elif now >= self._due["clients"]:
            self._due["clients"] = now + LISTS_INTERVAL
            if self._leads():
                self._announce(protocol.CHANNEL_CLIENTS, self.clients_message())

    def send_heartbeat(self) -> None:
        body = heartbeat_body(
            self.started_at,
            self.counters.snapshot(),
            self.status.broker,
            self.status.connected,
            self.configured_topics,
            now=self.clock(),
        )
        if self.group is not None:
            self.group.heartbeat(body, self.topic_index.snapshot(), self.status.message())
            self.sink.register()  # so dashboards find (and remember) the group's broker too
            return
        self.sink.heartbeat(body, self.status.message())

    def stats_message(self) -> dict[str, Any]:
        return protocol.envelope(protocol.TYPE_STATS, data=self.stats.snapshot())

    def clients_message(self) -> dict[str, Any]:
        clients = self.clients.snapshot()
        return protocol.envelope(
            protocol.TYPE_CLIENTS,
            clients=clients,
            count=len(clients),
            broker_connected_count=self.stats.data.get("clients_connected"),
        )

    def topics_message(self) -> dict[str, Any]:
        if self.group is not None:  # the whole group's, from every member's share
            topics = membership.merged_topics(self.sink.client, self.topic_index.max_topics, self.sink.names)
        else:
            topics = self.topic_index.snapshot()
        return protocol.envelope(protocol.TYPE_TOPICS, topics=topics, count=len(topics))

    def drain_events(self) -> None:
        """At shutdown: fold in what is queued so the final status is the true one."""
        while True:
            try:
                self._handle(self.events.get_nowait())
            except queue.Empty:
                return
