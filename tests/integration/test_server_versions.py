"""An old Redis is refused in one line, at start and after a reconnect, by the bridge and the dashboard.

The "old Redis" is a real redis-server 7 behind a proxy that reports version 6 in INFO.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import BridgeProcess, DashboardProcess, Process, wait_for
from tests.integration.redis_proxy import OldRedisProxy

pytestmark = pytest.mark.integration

BRIDGE_REFUSAL = "Redis 6.0 found; mqtt-redis-bridge needs ≥ 7.0"
DASHBOARD_REFUSAL = "Redis 6.0 found; mqtt-dashboard needs ≥ 7.0"


@pytest.fixture
def proxy(redis_server: Process) -> Iterator[OldRedisProxy]:
    found = OldRedisProxy(redis_server.port)
    yield found
    found.close()


def _exit_code(proc: BridgeProcess | DashboardProcess, timeout: float = 20) -> int:
    started = proc.proc
    assert started is not None
    wait_for(lambda: started.poll() is not None, timeout, what="the program to exit")
    return int(started.returncode)


def test_the_bridge_refuses_an_old_redis_at_start(
    workdir: Path, mosquitto: Process, proxy: OldRedisProxy
) -> None:
    bridge = BridgeProcess(workdir, mosquitto.port, proxy.port).start(wait_connected=False)
    try:
        code = _exit_code(bridge)
    finally:
        bridge.kill()

    assert code != 0
    assert bridge.output().count(BRIDGE_REFUSAL) == 1, bridge.output()
    assert "Traceback" not in bridge.output()


def test_the_bridge_stops_when_redis_comes_back_older(
    workdir: Path, mosquitto: Process, proxy: OldRedisProxy
) -> None:
    proxy.old = False
    bridge = BridgeProcess(workdir, mosquitto.port, proxy.port).start()
    try:
        bridge.assert_alive()
        proxy.old = True
        proxy.drop_connections()  # as a restart would: every connection is made anew
        code = _exit_code(bridge)
    finally:
        bridge.kill()

    assert code != 0
    assert BRIDGE_REFUSAL in bridge.output()


def test_the_dashboard_refuses_an_old_redis_before_starting_workers(
    workdir: Path, proxy: OldRedisProxy
) -> None:
    dashboard = DashboardProcess(workdir, proxy.port, workers=2, DASHBOARD_TOKEN="t")
    with open(dashboard.log, "ab") as out:
        dashboard.proc = subprocess.Popen(
            dashboard.command(), env=dashboard.env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        code = _exit_code(dashboard)
    finally:
        dashboard.stop()

    assert code != 0
    assert dashboard.output().strip().splitlines()[-1] == f"mqtt-dashboard: {DASHBOARD_REFUSAL}"
    assert "Booting worker" not in dashboard.output()


def test_the_dashboard_stops_when_redis_comes_back_older(workdir: Path, proxy: OldRedisProxy) -> None:
    proxy.old = False
    dashboard = DashboardProcess(workdir, proxy.port, workers=2, DASHBOARD_TOKEN="t").start()
    try:
        proxy.old = True
        proxy.drop_connections()  # the relays reconnect at once, and meet the "old" Redis
        code = _exit_code(dashboard, timeout=30)
    finally:
        dashboard.stop()

    output = dashboard.output()
    assert code != 0
    assert DASHBOARD_REFUSAL in output
    assert output.count("Booting worker") <= 4, output  # stopped, not respawned over and over
