"""Asks the broker's dynamic-security plugin which of its accounts are connected, and from where,
so the client list can mark the entries the broker itself confirms (``insight/live_connections.py``).

Only a bridge that logs in with a user name asks (the plugin has no anonymous admin), and only
while it leads. It asks after the list changed and every ``interval`` seconds; when the broker
cannot answer (no plugin, no right to ``$CONTROL/dynamic-security``, or mosquitto 2.0, whose
plugin reports no connections) it says so once and asks again only after the next reconnect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from bridge.insight.live_connections import LiveConnections, from_list_clients

logger = logging.getLogger(__name__)

INTERVAL = 10.0  # as often as the client list is republished anyway
SETTLE = 1.0  # a burst of connects becomes one question
LIST_CLIENTS = {"command": "listClients", "verbose": True}


class Plugin(Protocol):
    def request(self, request: dict[str, object]) -> dict[str, object] | str: ...


class BrokerConfirmation(threading.Thread):
    def __init__(
        self,
        plugin: Plugin,
        deliver: Callable[[LiveConnections | None], None],
        connected: Callable[[], bool],
        leads: Callable[[], bool],
        stop: threading.Event,
        interval: float = INTERVAL,
        settle: float = SETTLE,
    ):
        super().__init__(name="broker-confirmation", daemon=True)
        self.plugin = plugin
        self.deliver = deliver  # to the housekeeping thread, which owns the client list
        self.connected = connected
        self.leads = leads
        self.stop_event = stop
        self.interval = interval
        self.settle = settle
        self._wake = threading.Event()
        self._unavailable = False

    def poke(self) -> None:
        """The client list changed: ask soon."""
        self._wake.set()

    def reconnected(self) -> None:
        """Maybe another broker, or the same one upgraded: worth asking again."""
        self._unavailable = False
        self._wake.set()

    def run(self) -> None:
        while not self.stop_event.is_set():
            if self._wake.wait(self.interval):
                self.stop_event.wait(self.settle)
            self._wake.clear()
            if self.stop_event.is_set():
                return
            self.step()

    def step(self) -> None:
        """One round: ask, unless the broker cannot say, is away, or another member leads."""
        if not self._unavailable and self.connected() and self.leads():
            self.ask()

    def ask(self) -> LiveConnections | None:
        asked_at = time.time()
        response = self.plugin.request(dict(LIST_CLIENTS))
        live = response if isinstance(response, str) else from_list_clients(response, asked_at)
        if isinstance(live, str):
            logger.info("the broker cannot confirm the client list (%s); it comes from log lines only", live)
            self._unavailable = True
            self.deliver(None)
            return None
        self.deliver(live)
        return live
