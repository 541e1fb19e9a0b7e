"""Loss at the broker made visible (issue 21, defect 7): a real mosquitto with a small queue drops
messages for a bridge that falls behind; the bridge's own ``dropped`` cannot see that, so its stats
carry what the broker dropped, and the dashboard's /health and /api/health say degraded, why,
and what to change."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from bridge.contract import protocol
from tests.helpers import BridgeProcess, DashboardProcess, Process, start_mosquitto, wait_for
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration

TOKEN = "loss-token"


@pytest.fixture
def small_queue_broker(workdir: Path) -> Iterator[Process]:
    # Queues of 20 messages per subscriber: a subscriber that stops reading loses the rest.
    proc = start_mosquitto(workdir, extra="max_queued_messages 20\n")
    yield proc
    proc.stop()


def test_a_broker_dropping_messages_for_a_slow_bridge_shows_in_stats_and_health(
    workdir: Path, small_queue_broker: Process, redis_server: Process, r: redis.Redis
) -> None:
    bridge = BridgeProcess(workdir, small_queue_broker.port, redis_server.port, MQTT_TOPICS="load/#").start()
    dashboard = DashboardProcess(workdir, redis_server.port, workers=1, DASHBOARD_TOKEN=TOKEN).start()
    try:
        assert requests.get(f"{dashboard.url}/health", timeout=5).status_code == 200
        assert bridge.proc is not None
        # The bridge falls behind: stopped for a moment while 20,000 messages of 2 KB (40 MB)
        # arrive, far more than loopback's socket buffers (a few MB each way once the kernel has
        # grown them) and the broker's queue of 20 can hold for it.
        bridge.proc.send_signal(signal.SIGSTOP)
        try:
            publish_all(
                small_queue_broker.port, [(f"load/{i % 10}", b"x" * 2048) for i in range(20_000)], qos=0
            )
        finally:
            bridge.proc.send_signal(signal.SIGCONT)

        def stats_show_the_loss() -> dict[str, object] | None:
            stats = protocol.loads_object(r.get(protocol.KEY_STATS_LATEST)) or {}
            data = stats.get("data") or {}
            # $SYS counts come every few seconds: wait until they show most of the loss.
            return data if (data.get("publish_dropped_recent") or 0) > 1000 else None  # type: ignore[union-attr]

        data = wait_for(stats_show_the_loss, 20, what="the broker's drops in the bridge's stats")
        heartbeat = protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)) or {}
        assert heartbeat["counters"]["dropped"] == 0  # the bridge itself lost nothing it received
        assert data["publish_dropped"] >= data["publish_dropped_recent"] > 1000  # type: ignore[operator]

        terse = requests.get(f"{dashboard.url}/health", timeout=5)
        assert terse.status_code == 503
        assert terse.json()["broker"] == {"connected": True, "dropping": True}
        details = requests.get(
            f"{dashboard.url}/api/health", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        ).json()
        assert details["status"] == "degraded"
        assert details["brokers"]["default"]["loss"]["last_minute"] > 1000
        (problem,) = details["problems"]
        assert "the broker is dropping messages" in problem and "docs/operations.md" in problem
    finally:
        dashboard.stop()
        bridge.kill()
