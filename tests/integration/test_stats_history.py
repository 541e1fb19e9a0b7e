"""The stats history against the real bridge and redis-server: recorded, kept across a bridge
restart, and resumed after a Redis restart (what was recorded before it is lost without persistence)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from bridge.contract import protocol
from tests.helpers import Process, wait_for


def points(r: redis.Redis, key: str = protocol.KEY_STATS_HISTORY) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in r.lrange(key, 0, -1)]


def test_the_bridge_records_every_snapshot_and_a_restarted_bridge_carries_on(
    make_bridge: Any, r: redis.Redis
) -> None:
    first = make_bridge(STATS_INTERVAL="0.5").start()
    wait_for(lambda: len(points(r)) >= 4, 15, what="four stats points")
    first.stop()
    before = points(r)
    latest = json.loads(r.get(protocol.KEY_STATS_LATEST))
    assert before[-1]["timestamp"] == latest["timestamp"]  # each announced snapshot is recorded
    assert before[-1]["data"]["clients_connected"] == latest["data"]["clients_connected"]
    stamps = [p["timestamp"] for p in before]
    assert stamps == sorted(set(stamps))  # one point per snapshot, oldest first

    make_bridge(STATS_INTERVAL="0.5").start()
    wait_for(lambda: len(points(r)) >= len(before) + 3, 15, what="new points after the restart")
    after = points(r)
    assert after[: len(before)] == before  # kept across the restart
    minutes = [int(p["timestamp"] // 60) for p in points(r, protocol.KEY_STATS_HISTORY_MINUTE)]
    assert minutes and minutes == sorted(set(minutes))  # one point a minute, none twice


def test_recording_resumes_after_a_redis_restart(bridge: Any, redis_server: Process, r: redis.Redis) -> None:
    wait_for(lambda: len(points(r)) >= 2, 15, what="points before the outage")
    redis_server.stop()
    restarted_at = time.time()
    redis_server.start()
    wait_for(
        lambda: any(p["timestamp"] > restarted_at for p in points(r)),
        20,
        what="a stats point recorded after Redis came back",
    )
    bridge.assert_alive()
