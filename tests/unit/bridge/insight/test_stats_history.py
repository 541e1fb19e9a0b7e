"""The bridge's bounded stats history: every snapshot for 15 minutes, one a minute for 24 hours."""

from __future__ import annotations

import json
import time

import fakeredis

from bridge.contract import protocol
from bridge.insight.stats_history import StatsHistory, fine_points
from tests.unit.bridge.conftest import make_housekeeper


def stats(timestamp: float, received: int = 0, **data: object) -> dict[str, object]:
    body = {
        "version": "2.0.11",
        "uptime_seconds": 100,
        "clients_connected": 3,
        "messages_received": received,
        "load": {"messages_received": {"1min": 1.0}},
        "rates": {"messages_received_per_s": 2.5},
        **data,
    }
    return {"type": protocol.TYPE_STATS, "timestamp": timestamp, "data": body}


def stored(r: fakeredis.FakeRedis, key: str) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in r.lrange(key, 0, -1)]


def test_each_snapshot_is_kept_compact_and_the_fine_tier_is_bounded(r: fakeredis.FakeRedis) -> None:
    history = StatsHistory(r, stats_interval=5)
    start = 1_700_000_000.0
    for i in range(400):  # 400 snapshots at 5 s: 33 minutes
        history.record(stats(start + 5 * i, received=i))

    fine = stored(r, protocol.KEY_STATS_HISTORY)
    assert len(fine) == fine_points(5) == 181  # 15 minutes at 5 s, both ends included
    assert fine[-1]["timestamp"] == start + 5 * 399
    assert fine[-1]["timestamp"] - fine[0]["timestamp"] == 15 * 60
    newest = fine[-1]["data"]
    assert newest["messages_received"] == 399 and newest["clients_connected"] == 3
    assert newest["rates"] == {"messages_received_per_s": 2.5}
    assert "version" not in newest and "load" not in newest  # only what the charts draw


def test_the_minute_tier_keeps_one_point_a_minute_for_24_hours(r: fakeredis.FakeRedis) -> None:
    history = StatsHistory(r, stats_interval=30)
    start = 1_700_000_040.0  # 40 s into a minute
    for i in range(2 * (24 * 60 + 30)):  # 24.5 hours at 30 s
        history.record(stats(start + 30 * i, received=i))

    minute = stored(r, protocol.KEY_STATS_HISTORY_MINUTE)
    assert len(minute) == protocol.STATS_HISTORY_MINUTES
    minutes = [int(p["timestamp"] // 60) for p in minute]  # type: ignore[operator]
    assert minutes == list(range(minutes[0], minutes[0] + len(minutes)))  # one a minute, no gaps
    assert len(stored(r, protocol.KEY_STATS_HISTORY)) == fine_points(30) == 31


def test_a_restarted_bridge_adds_no_second_point_to_the_last_recorded_minute(r: fakeredis.FakeRedis) -> None:
    StatsHistory(r, stats_interval=5).record(stats(1_700_000_000.0))
    restarted = StatsHistory(r, stats_interval=5)
    restarted.record(stats(1_700_000_010.0))  # same minute
    restarted.record(stats(1_700_000_065.0))  # the next one

    assert [p["timestamp"] for p in stored(r, protocol.KEY_STATS_HISTORY_MINUTE)] == [
        1_700_000_000.0,
        1_700_000_065.0,
    ]
    assert len(stored(r, protocol.KEY_STATS_HISTORY)) == 3


def test_a_tiny_stats_interval_keeps_a_bounded_list(r: fakeredis.FakeRedis) -> None:
    assert fine_points(0.1) == protocol.STATS_HISTORY_MAX_FINE_POINTS


def test_a_snapshot_without_data_or_timestamp_is_not_recorded(r: fakeredis.FakeRedis) -> None:
    history = StatsHistory(r, stats_interval=5)
    history.record({"type": protocol.TYPE_STATS, "timestamp": 1.0})
    history.record({"type": protocol.TYPE_STATS, "timestamp": "soon", "data": {}})

    assert r.llen(protocol.KEY_STATS_HISTORY) == 0


def test_the_housekeeper_records_every_snapshot_it_announces(r: fakeredis.FakeRedis) -> None:
    keeper = make_housekeeper(r)
    keeper.stats.update("$SYS/broker/clients/connected", b"4", time.time())
    now = time.monotonic()
    keeper._run_due(now + 1.5)
    keeper._run_due(now + 3.0)

    fine = stored(r, protocol.KEY_STATS_HISTORY)
    latest = json.loads(r.get(protocol.KEY_STATS_LATEST))
    assert len(fine) == 2
    assert fine[-1]["timestamp"] == latest["timestamp"]
    assert fine[-1]["data"]["clients_connected"] == 4  # type: ignore[index]
