"""GET /api/broker/stats/history over fakeredis, with history written by the bridge's own writer."""

from __future__ import annotations

import itertools
import time

import fakeredis
from flask.testing import FlaskClient

from bridge.contract import protocol
from bridge.insight.stats_history import StatsHistory
from tests.unit.dashboard.fakes import BEARER


def snapshot(timestamp: float, received: int) -> dict[str, object]:
    data = {"clients_connected": 2, "messages_received": received, "version": "2.0.11"}
    return {"type": protocol.TYPE_STATS, "timestamp": timestamp, "data": data}


def record_last(redis_client: fakeredis.FakeRedis, seconds: int, every: float) -> float:
    """What a bridge running for ``seconds`` at STATS_INTERVAL ``every`` leaves behind."""
    history = StatsHistory(redis_client, stats_interval=every)
    now = time.time()
    count = int(seconds / every)
    for i in range(count + 1):
        history.record(snapshot(now - seconds + i * every, received=i))
    return now


def test_the_default_range_is_the_last_15_minutes_at_full_resolution(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    now = record_last(redis_client, 2 * 3600, every=5)

    body = client.get("/api/broker/stats/history", headers=BEARER).get_json()

    assert body["range"] == "15m" and body["seconds"] == 900
    stamps = [p["timestamp"] for p in body["points"]]
    assert stamps == sorted(stamps)
    assert now - 900 - 1 <= stamps[0] and stamps[-1] == now
    assert 175 <= len(stamps) <= 181  # one every 5 s
    assert body["points"][-1]["data"] == {"clients_connected": 2, "messages_received": 1440}


def test_a_day_is_minute_points_then_the_fine_ones(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    now = record_last(redis_client, 26 * 3600, every=10)

    body = client.get("/api/broker/stats/history?range=24h", headers=BEARER).get_json()

    stamps = [p["timestamp"] for p in body["points"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stamps[0] >= now - 24 * 3600
    assert stamps[0] <= now - 24 * 3600 + 60  # the chart is full from its left edge
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) <= 60.0 + 1e-6  # no hole where the resolutions meet
    recent = [s for s in stamps if s >= now - 15 * 60 + 10]
    assert len(recent) >= 85  # the last 15 minutes at 10 s
    assert 1440 <= len(stamps) <= 1440 + 91


def test_an_hour_spans_the_hour(client: FlaskClient, redis_client: fakeredis.FakeRedis) -> None:
    now = record_last(redis_client, 3 * 3600, every=5)

    points = client.get("/api/broker/stats/history?range=1h", headers=BEARER).get_json()["points"]

    assert now - 3600 <= points[0]["timestamp"] <= now - 3600 + 60
    assert points[-1]["timestamp"] == now


def test_no_history_yet_is_an_empty_list_not_an_error(client: FlaskClient) -> None:
    response = client.get("/api/broker/stats/history?range=1h", headers=BEARER)

    assert response.status_code == 200
    assert response.get_json()["points"] == []


def test_damaged_entries_are_skipped(client: FlaskClient, redis_client: fakeredis.FakeRedis) -> None:
    now = time.time()
    redis_client.rpush(protocol.KEY_STATS_HISTORY, "not json", '{"timestamp": "x", "data": {}}', "[1]")
    redis_client.rpush(protocol.KEY_STATS_HISTORY, protocol.dumps({"timestamp": now, "data": {"a": 1}}))

    points = client.get("/api/broker/stats/history", headers=BEARER).get_json()["points"]

    assert points == [{"timestamp": now, "data": {"a": 1}}]


def test_an_unknown_range_is_refused_with_the_choices(client: FlaskClient) -> None:
    response = client.get("/api/broker/stats/history?range=7d", headers=BEARER)

    assert response.status_code == 400
    assert response.get_json()["error"] == "range must be one of 15m, 1h, 24h, got '7d'"


def test_the_history_needs_a_login(client: FlaskClient) -> None:
    assert client.get("/api/broker/stats/history").status_code == 401
