"""Damaged values in Redis never stop the housekeeping thread: each is reported, counted and
replaced, and a thread that fails anyway starts over (issue 21, defect 9)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from bridge.contract import protocol
from bridge.contract.backoff import NoWait
from bridge.contract.redis_values import REJECTED
from bridge.ingest.counters import Counters
from bridge.ingest.redis_sink import RedisSink
from bridge.insight.housekeeping import Housekeeper
from bridge.insight.status import BrokerStatus
from bridge.insight.topics import TopicIndex
from tests.helpers import wait_for

UNNAMED = protocol.Names()


def _keeper(r: fakeredis.FakeRedis, load_subscriptions: Any = lambda: True) -> Housekeeper:
    return Housekeeper(
        RedisSink(r, 100, UNNAMED),
        Counters(),
        BrokerStatus("localhost:1883"),
        TopicIndex(),
        threading.Event(),
        stats_interval=1,
        started_at=time.time(),
        configured_topics=["#"],
        load_subscriptions=load_subscriptions,
        backoff=NoWait(),
    )


@pytest.fixture
def running() -> Iterator[list[Housekeeper]]:
    started: list[Housekeeper] = []
    yield started
    for keeper in started:
        keeper.stop_event.set()
        keeper.sys_messages([])  # wakes it at once
        keeper.join(5)


def _heartbeat(r: fakeredis.FakeRedis) -> dict[str, Any] | None:
    return protocol.loads_object(r.get(protocol.KEY_HEARTBEAT))


@pytest.mark.parametrize(
    "stats",
    [
        '{"type":"stats_update","timestamp":1718000000.0,"data":{"uptime_seconds":' + "9" * 400 + "}}",
        '{"type":"stats_update","timestamp":1718000000.0,"data":{"uptime_seconds":-5}}',
        '{"type":"stats_update","timestamp":' + "9" * 400 + ',"data":{"uptime_seconds":5}}',
        '{"type":"stats_update","timestamp":"noon","data":{"uptime_seconds":1e999}}',
    ],
)
def test_a_damaged_stats_snapshot_at_start_is_replaced_and_the_heartbeat_comes(
    r: fakeredis.FakeRedis, running: list[Housekeeper], stats: str
) -> None:
    r.set(protocol.KEY_STATS_LATEST, stats)
    r.set(protocol.KEY_CLIENTS_LATEST, protocol.dumps({"type": "clients_update", "clients": []}))
    before = REJECTED.count
    keeper = _keeper(r)
    running.append(keeper)
    keeper.start()
    heartbeat = wait_for(lambda: _heartbeat(r), 5, what="the heartbeat")
    assert keeper.is_alive() and keeper.restarts == 0  # handled where it was read, not by a crash
    assert REJECTED.count > before
    assert heartbeat["counters"]["redis_values_rejected"] == REJECTED.count


def test_a_damaged_value_is_logged_once_per_place(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.contract.redis_values")
    place = f"test-place-{time.monotonic_ns()}"
    before = REJECTED.count
    for _ in range(3):
        REJECTED.report(place, "not a time")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and place in r.getMessage()]
    assert len(warnings) == 1 and REJECTED.count == before + 3


def test_a_housekeeping_loop_that_raises_starts_over_and_says_so(
    r: fakeredis.FakeRedis, running: list[Housekeeper], caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def load_subscriptions() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug nobody foresaw")
        return True

    keeper = _keeper(r, load_subscriptions)
    running.append(keeper)
    keeper.start()
    wait_for(lambda: _heartbeat(r), 5, what="the heartbeat after the loop started over")
    assert keeper.is_alive() and keeper.restarts == 1
    assert any("starts over" in rec.getMessage() and rec.exc_info for rec in caplog.records)
