"""A restarted bridge takes up the client list it last published, unless the broker restarted too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from bridge.contract import protocol
from bridge.insight.clients import ClientTracker
from bridge.insight.housekeeping import Housekeeper
from tests.helpers import wait_for
from tests.unit.bridge.conftest import make_housekeeper

SENSOR = {
    "client_id": "sensor-1",
    "address": "10.0.0.5:52144",
    "username": "alice",
    "protocol": "MQTT 3.1.1",
    "keepalive": 60,
    "connected_at": 1000.0,
    "bridge": False,
    "broker_confirmed": None,
}


def _last_run(r: fakeredis.FakeRedis, uptime: int, seen_ago: float, clients: Any = None) -> None:
    """What the previous bridge left in Redis: its last client list and stats snapshot."""
    now = time.time()
    clients = [SENSOR] if clients is None else clients
    r.set(
        protocol.KEY_CLIENTS_LATEST, protocol.dumps(protocol.envelope(protocol.TYPE_CLIENTS, clients=clients))
    )
    stats = protocol.envelope(protocol.TYPE_STATS, data={"uptime_seconds": uptime})
    stats["timestamp"] = now - seen_ago
    r.set(protocol.KEY_STATS_LATEST, protocol.dumps(stats))


@pytest.fixture
def housekeeper(r: fakeredis.FakeRedis) -> Iterator[Housekeeper]:
    keeper = make_housekeeper(r)
    yield keeper
    keeper.stop_event.set()
    keeper.join(5)


def _ids(r: fakeredis.FakeRedis) -> list[str] | None:
    latest = protocol.loads_object(r.get(protocol.KEY_CLIENTS_LATEST))
    return [c["client_id"] for c in latest["clients"]] if latest else None


def _uptime(keeper: Housekeeper, seconds: int) -> None:
    keeper.sys_messages([("$SYS/broker/uptime", f"{seconds} seconds".encode(), 0, True, time.time())])


def test_the_list_is_kept_when_the_broker_kept_running(
    r: fakeredis.FakeRedis, housekeeper: Housekeeper
) -> None:
    _last_run(r, uptime=5000, seen_ago=120)
    housekeeper.start()
    _uptime(housekeeper, 5125)  # two minutes on: the same broker
    wait_for(lambda: housekeeper.stats.data.get("uptime_seconds") == 5125, 5, what="the uptime")

    assert [c["client_id"] for c in housekeeper.clients.snapshot()] == ["sensor-1"]
    assert housekeeper.clients.snapshot()[0] == SENSOR


def test_the_list_is_dropped_when_the_uptime_went_backwards(
    r: fakeredis.FakeRedis, housekeeper: Housekeeper
) -> None:
    _last_run(r, uptime=5000, seen_ago=120)
    housekeeper.start()
    _uptime(housekeeper, 30)
    wait_for(lambda: housekeeper.stats.data.get("uptime_seconds") == 30, 5, what="the uptime")

    wait_for(lambda: _ids(r) == [], 15, what="an empty client list published")


def test_a_broker_restarted_long_ago_is_noticed_too(r: fakeredis.FakeRedis, housekeeper: Housekeeper) -> None:
    # The bridge was away an hour; the broker restarted 10 minutes ago: its uptime (600) is more
    # than the last one seen (300), but far less than that plus the hour that went by.
    _last_run(r, uptime=300, seen_ago=3600)
    housekeeper.start()
    _uptime(housekeeper, 600)
    wait_for(lambda: housekeeper.stats.data.get("uptime_seconds") == 600, 5, what="the uptime")

    wait_for(lambda: housekeeper.clients.snapshot() == [], 5, what="the old list forgotten")


@pytest.mark.parametrize(
    "records",
    [
        "not a list",
        [None, 3, "x", {}],
        [{**SENSOR, "keepalive": "60"}],
        [{**SENSOR, "client_id": ""}],
        [{**SENSOR, "connected_at": True}],
        [{**SENSOR, "username": ["alice"]}],
    ],
)
def test_records_that_were_not_written_by_the_bridge_are_skipped(records: Any) -> None:
    tracker = ClientTracker()

    assert tracker.restore(records) == 0
    assert tracker.snapshot() == []


def test_a_restored_list_is_taken_up_whole() -> None:
    tracker = ClientTracker()

    assert tracker.restore([SENSOR, {**SENSOR, "client_id": "sensor-2", "username": None}]) == 2
    assert [c["client_id"] for c in tracker.snapshot()] == ["sensor-1", "sensor-2"]
