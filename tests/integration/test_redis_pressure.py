"""Redis out of memory (maxmemory with noeviction, as compose runs it): the bridge makes room in
its own history, keeps its heartbeat and status alive, counts what it dropped, and carries on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.contract import protocol
from tests.helpers import REDIS_SERVER, BridgeProcess, Process, free_port, wait_for
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration


@pytest.fixture
def small_redis(workdir: Path) -> Iterator[Process]:
    port = free_port()
    data = workdir / f"redis-{port}"
    data.mkdir()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", ""]
    argv += ["--appendonly", "no", "--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]
    proc = Process(argv, port, workdir / f"redis-{port}.log")
    proc.start()
    yield proc
    proc.stop()


def _heartbeat(r: redis.Redis) -> dict[str, Any]:
    return protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)) or {}


def test_a_full_redis_does_not_stall_the_bridge(
    workdir: Path, mosquitto: Process, small_redis: Process
) -> None:
    r = redis.Redis(port=small_redis.port, socket_timeout=5)
    bridge = BridgeProcess(
        workdir, mosquitto.port, small_redis.port, HISTORY_MAXLEN="100000", HISTORY_MAX_BYTES="0"
    ).start()
    try:
        # 9 MB of 30 KB messages into a 4 MB Redis: without room made, every write after the
        # first ~100 is refused for memory, the heartbeat with them.
        blob = b"x" * 30_000
        publish_all(mosquitto.port, [("big/blob", blob)] * 300)
        # The whole log: output() keeps only its tail, from which the line may have scrolled.
        wait_for(
            lambda: "Redis is out of memory: trimmed mqtt:history" in bridge.log.read_text(errors="replace"),
            20,
            what="a trim",
        )
        stamp = _heartbeat(r)["timestamp"]
        # Two fresh heartbeats in a row after the flood (one every 5 s): the bridge is alive.
        wait_for(lambda: _heartbeat(r).get("timestamp", 0) > stamp + 8, 20, what="heartbeats after the flood")
        status = protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST))
        assert status is not None and status["connected"] is True
        # And it still forwards.
        publish_all(mosquitto.port, [("after/oom", b"still here")])
        wait_for(
            lambda: any(
                json.loads(f[b"data"])["topic"] == "after/oom"
                for _, f in r.xrevrange(protocol.KEY_HISTORY, count=5)
            ),
            15,
            what="a message after the flood",
        )
        bridge.assert_alive()

        def settled() -> dict[str, int] | None:
            c = _heartbeat(r).get("counters") or {}
            total = c["forwarded"] + c["dropped"] + c["queue_depth"] + c["system"]
            return c if c["received"] == total and c["forwarded"] >= 301 - c["dropped"] else None

        counters = wait_for(settled, 20, what="counters that add up")
        assert counters["received"] >= 301
    finally:
        bridge.kill()


def test_history_max_bytes_bounds_the_stream(
    workdir: Path, mosquitto: Process, redis_server: Process
) -> None:
    r = redis.Redis(port=redis_server.port, socket_timeout=5)
    bridge = BridgeProcess(
        workdir, mosquitto.port, redis_server.port, HISTORY_MAXLEN="100000", HISTORY_MAX_BYTES="1000000"
    ).start()
    try:
        publish_all(mosquitto.port, [("big/blob", b"y" * 20_000)] * 200)  # 4 MB in all
        wait_for(
            lambda: (_heartbeat(r).get("counters") or {}).get("forwarded", 0) >= 200, 20, what="the load"
        )
        stored = sum(len(f[b"data"]) for _, f in r.xrange(protocol.KEY_HISTORY))
        assert 500_000 < stored <= 1_300_000  # about the budget ("~" trims in whole stream nodes)
    finally:
        bridge.kill()
