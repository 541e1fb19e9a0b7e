"""A browser tab that stops reading must not grow the real dashboard worker without bound.

A raw WebSocket client logs in to the real dashboard (Gunicorn, one gevent worker) and then
stops reading, while 100 MiB of MQTT messages go through Redis. The worker's memory must stay
near DASHBOARD_CLIENT_BUFFER, and when the tab reads again, its frames count every message it
did not get, so received + skipped adds up to what was published.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import websocket

from bridge.contract.protocol import CHANNEL_MESSAGES, message_json
from tests.helpers import DashboardProcess, Process, start_redis, wait_for

pytestmark = pytest.mark.integration

TOKEN = "slow-browser-token"
BUFFER = 1024 * 1024  # DASHBOARD_CLIENT_BUFFER for this test: 1 MiB
PAYLOAD = b"p" * (100 * 1024)  # ten fill a frame of DASHBOARD_CLIENT_BUFFER
MESSAGES = 1000  # 100 MiB at least
ROUND = 10


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Process, DashboardProcess]]:
    redis_proc = start_redis(tmp_path)
    dashboard = DashboardProcess(
        tmp_path, redis_proc.port, workers=1, DASHBOARD_TOKEN=TOKEN, DASHBOARD_CLIENT_BUFFER=str(BUFFER)
    )
    dashboard.start()
    yield redis_proc, dashboard
    dashboard.stop()
    redis_proc.stop()


def _metric(dashboard: DashboardProcess, name: str) -> float:
    text = requests.get(
        f"{dashboard.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _connect_and_stall(dashboard: DashboardProcess) -> websocket.WebSocket:
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{dashboard.port}/socket.io/?EIO=4&transport=websocket",
        # A small receive window, so the kernel does not quietly absorb what the worker sends.
        sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)],
        skip_utf8_validation=True,  # the pure-Python check is slow on MiB frames; JSON parsing checks anyway
        timeout=30,
    )
    assert ws.recv().startswith("0")
    ws.send("40" + json.dumps({"token": TOKEN}))
    while '"snapshot"' not in ws.recv():
        pass
    return ws


def _events(ws: websocket.WebSocket) -> Iterator[tuple[str, Any]]:
    while True:
        frame = ws.recv()
        if frame == "2":  # Engine.IO ping: answer, as a browser does
            ws.send("3")
            continue
        if isinstance(frame, str) and frame.startswith("42"):
            name, *args = json.loads(frame[2:])
            yield name, args[0] if args else None


def test_a_stalled_tab_costs_the_worker_only_its_buffer_and_is_told_what_it_missed(
    stack: tuple[Process, DashboardProcess], request: pytest.FixtureRequest
) -> None:
    redis_proc, dashboard = stack
    worker = requests.get(f"{dashboard.url}/health", timeout=10).json()["worker"]
    ws = _connect_and_stall(dashboard)
    request.addfinalizer(ws.close)
    r = redis.Redis(port=redis_proc.port)
    request.addfinalizer(r.close)
    before = _rss_bytes(worker)
    base = _metric(dashboard, "mqtt_dashboard_relay_received_total")

    published = 0

    def publish_round() -> None:
        # Paced by what the relay has taken, so Redis never drops the relay as a slow subscriber.
        nonlocal published
        for _ in range(ROUND):
            r.publish(CHANNEL_MESSAGES, message_json(f"big/{published}", PAYLOAD, 0, False, time.time()))
            published += 1
        wait_for(
            lambda want=base + published: _metric(dashboard, "mqtt_dashboard_relay_received_total") >= want,
            30,
            what="the relay to receive the round",
        )

    while published < MESSAGES:
        publish_round()
    grown = _rss_bytes(worker) - before
    # Without the cap the worker held all 100 MiB for this one tab.
    assert grown < 40 * 1024 * 1024, f"the worker grew by {grown / 2**20:.0f} MiB for one stalled tab"
    # On until a frame was withheld, however much the kernel's socket buffers took first.
    while not _metric(dashboard, "mqtt_dashboard_frames_withheld_total"):
        assert published < 3 * MESSAGES, "no frame was ever withheld from the stalled tab"
        publish_round()

    # The tab reads again; one more message makes a frame that carries the count.
    r.publish(CHANNEL_MESSAGES, message_json("last", b"x", 0, False, time.time()))
    delivered, skipped = 0, 0
    for name, data in _events(ws):
        if name != "mqtt_messages":
            continue
        delivered += len(data["messages"])
        skipped += data["skipped"]
        if any(m["topic"] == "last" for m in data["messages"]):
            break

    assert skipped > 0
    assert delivered + skipped == published + 1  # every message is either delivered or counted
