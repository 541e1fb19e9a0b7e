"""The bridge asks the dynamic-security plugin which clients are connected, hands the answer to
housekeeping, and stops asking a broker that cannot say (until the next reconnect)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from bridge.contract import protocol
from bridge.control.broker_confirmation import BrokerConfirmation
from bridge.insight.live_connections import LiveConnections
from tests.helpers import wait_for
from tests.unit.bridge.conftest import make_housekeeper

RECORDINGS = Path(__file__).parents[1] / "insight" / "mosquitto_recordings"


def _answer(version: str) -> dict[str, Any]:
    return dict(json.loads((RECORDINGS / f"list-clients-{version}.json").read_text())["response"])


class Plugin:
    """Answers every request with ``answer`` (a response, or a sentence as DynsecClient gives)."""

    def __init__(self, answer: dict[str, Any] | str):
        self.answer = answer
        self.requests: list[dict[str, object]] = []

    def request(self, request: dict[str, object]) -> dict[str, object] | str:
        self.requests.append(request)
        return self.answer


def _checker(plugin: Plugin, delivered: list[LiveConnections | None], **kwargs: Any) -> BrokerConfirmation:
    return BrokerConfirmation(
        plugin,
        delivered.append,
        lambda: True,
        lambda: True,
        threading.Event(),
        interval=60,
        settle=0,
        **kwargs,
    )


def test_a_2_1_broker_is_asked_for_its_clients_and_the_answer_is_handed_on() -> None:
    delivered: list[LiveConnections | None] = []
    plugin = Plugin(_answer("2.1.2"))
    live = _checker(plugin, delivered).ask()
    assert plugin.requests == [{"command": "listClients", "verbose": True}]
    assert live is not None and delivered == [live]
    assert live.accounts == {"mqtt-bridge": ("127.0.0.1",), "sensor-user": ("127.0.0.1", "127.0.0.1")}


@pytest.mark.parametrize("answer", [_answer("2.0.11"), "the broker did not answer within 5 s"])
def test_a_broker_that_cannot_say_is_not_asked_again_until_a_reconnect(answer: dict[str, Any] | str) -> None:
    delivered: list[LiveConnections | None] = []
    plugin = Plugin(answer)
    checker = _checker(plugin, delivered)
    checker.step()
    checker.step()
    assert (len(plugin.requests), delivered) == (1, [None])
    checker.reconnected()
    checker.step()
    assert len(plugin.requests) == 2


def test_nobody_is_asked_while_disconnected_or_not_leading() -> None:
    plugin = Plugin(_answer("2.1.2"))
    for connected, leads in ((False, True), (True, False)):
        checker = BrokerConfirmation(
            plugin, lambda live: None, lambda c=connected: c, lambda x=leads: x, threading.Event()
        )
        checker.step()
    assert plugin.requests == []


def test_the_thread_asks_soon_after_a_change_and_stops_when_told() -> None:
    delivered: list[LiveConnections | None] = []
    checker = _checker(Plugin(_answer("2.1.2")), delivered)
    checker.start()
    checker.poke()
    wait_for(lambda: len(delivered) == 1, 5, what="a question after the client list changed")
    checker.stop_event.set()
    checker.poke()
    checker.join(5)
    assert not checker.is_alive()


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def keeper(r: fakeredis.FakeRedis) -> Iterator[Any]:
    housekeeper = make_housekeeper(r)
    housekeeper.start()
    yield housekeeper
    housekeeper.stop_event.set()
    housekeeper.join(5)


def test_the_published_list_says_which_entries_the_broker_confirms(
    r: fakeredis.FakeRedis, keeper: Any
) -> None:
    line = b"New client connected from 127.0.0.1:40001 as sensor-a (p4, c1, k60, u'sensor-user')."
    keeper.sys_messages([("$SYS/broker/log/N", line, 0, False, time.time() - 5)])
    delivered: list[LiveConnections | None] = []
    live = _checker(Plugin(_answer("2.1.2")), delivered).ask()
    keeper.confirmed(live)

    def published() -> list[Any]:
        latest = protocol.loads_object(r.get(protocol.KEY_CLIENTS_LATEST)) or {}
        return [(c["client_id"], c["broker_confirmed"]) for c in latest.get("clients", [])]

    wait_for(
        lambda: published() == [("sensor-a", True)], 5, what="the confirmed entry in mqtt:clients:latest"
    )
