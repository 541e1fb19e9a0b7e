"""One registered broker's damaged heartbeat, against the real dashboard (Gunicorn, gevent) and
redis-server (issue 21, defect 10): every route answers, that broker is shown unreadable, and a
browser watching another broker keeps getting every live message (its worker's relay used to
restart twice a second, and its viewers got 0 of 200)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from bridge.contract import protocol
from bridge.contract.protocol import Names
from tests.helpers import DashboardProcess, Process, wait_for
from tests.integration.browser_client import Browser

pytestmark = pytest.mark.integration

TOKEN = "damaged-heartbeat-token"
A, B = Names("a"), Names("b")


@pytest.fixture
def dashboard(workdir: Path, redis_server: Process) -> Iterator[DashboardProcess]:
    proc = DashboardProcess(workdir, redis_server.port, workers=1, DASHBOARD_TOKEN=TOKEN).start()
    yield proc
    proc.stop()


def _register(r: redis.Redis, names: Names, heartbeat: str) -> None:
    """What a bridge of that name leaves: its registry entry, status and heartbeat (with its TTL)."""
    r.zadd(protocol.KEY_BROKER_REGISTRY, {names.broker: time.time()})
    status = protocol.envelope(protocol.TYPE_STATUS, connected=True, broker=f"{names.broker}:1883")
    r.set(names.KEY_STATUS_LATEST, protocol.dumps(status))
    r.set(names.KEY_HEARTBEAT, heartbeat, ex=protocol.HEARTBEAT_TTL)


def test_a_damaged_heartbeat_of_one_broker_breaks_nothing_else(
    dashboard: DashboardProcess, r: redis.Redis
) -> None:
    _register(r, A, protocol.dumps({"timestamp": time.time(), "pid": 1, "counters": {"forwarded": 0}}))
    _register(r, B, '{"timestamp": ' + "9" * 400 + ', "pid": 2}')
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    answers = {
        path: requests.get(f"{dashboard.url}{path}", headers=bearer, timeout=10)
        for path in ("/health", "/api/health", "/api/brokers", "/api/brokers/b/health")
    }
    assert {p: a.status_code for p, a in answers.items()} == {
        "/health": 503,  # b cannot vouch for itself
        "/api/health": 503,
        "/api/brokers": 200,
        "/api/brokers/b/health": 503,
    }
    details = answers["/api/health"].json()
    assert details["brokers"]["a"]["bridge"]["online"] is True
    assert "timestamp is not a time" in details["brokers"]["b"]["bridge"]["problem"]

    watching_b = Browser(dashboard.url, auth={"token": TOKEN, "broker": "b"}).connect()
    watching_a = Browser(dashboard.url, auth={"token": TOKEN, "broker": "a"}).connect()
    try:
        assert watching_b.snapshot is not None and watching_b.snapshot["bridge"]["online"] is False
        # The relay has read b's heartbeat (it used to fail there and start over, again and again).
        health_b = wait_for(lambda: watching_b.events_named("bridge_health"), 10, what="b's health event")
        assert health_b[-1]["online"] is False and health_b[-1]["problem"]
        for n in range(200):
            r.publish(A.CHANNEL_MESSAGES, protocol.message_json(f"site-a/{n}", b"1", 0, False, time.time()))
        wait_for(lambda: len(watching_a.received()) == 200, 15, what="all 200 live messages at a's browser")
    finally:
        watching_a.close()
        watching_b.close()
    assert "relay failed unexpectedly" not in dashboard.output()
    rows = {row["name"]: row for row in json.loads(answers["/api/brokers"].text)["brokers"]}
    assert rows["a"]["online"] is True and rows["b"]["online"] is False and rows["b"]["problem"]
