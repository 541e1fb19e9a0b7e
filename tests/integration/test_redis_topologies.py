"""Bridge and dashboard on a real Redis Cluster (3 primaries, 3 replicas) and a real Sentinel set
(1 master, 2 replicas, 3 sentinels), end to end, and through a failover of each.

One topology and one stack (mosquitto, bridge, a one-worker dashboard, a socket client) per
module-scoped fixture; the failover tests run after the end-to-end ones on the same stack.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from bridge.contract import protocol, redis_topology, server_versions
from bridge.contract.env import RedisSettings
from bridge.ingest import redis_sink
from tests.helpers import (
    BridgeProcess,
    DashboardProcess,
    MqttRecorder,
    Process,
    env_with,
    free_port,
    start_mosquitto,
    wait_for,
)
from tests.integration.browser_client import Browser
from tests.integration.conftest import ChannelRecorder
from tests.integration.mqtt_client import publish_all
from tests.integration.redis_topologies import RedisClusterSet, SentinelSet

pytestmark = pytest.mark.integration

TOKEN = "topology-token"


class Stack:
    """mosquitto -> bridge -> (the topology) -> dashboard -> one socket client."""

    def __init__(self, workdir: Path, topology: RedisClusterSet | SentinelSet):
        self.topology = topology
        self.env = topology.env()
        self.mosquitto: Process = start_mosquitto(workdir)
        self.bridge = BridgeProcess(workdir, self.mosquitto.port, 6379, **self.env)
        self.bridge.redis = topology.client()  # where the test looks for the bridge's status
        self.dashboard = DashboardProcess(
            workdir, 6379, workers=1, DASHBOARD_TOKEN=TOKEN, DASHBOARD_COMMAND_TIMEOUT="5", **self.env
        )
        self.browser: Browser | None = None

    def start(self) -> Stack:
        try:
            self.bridge.start()
            self.dashboard.start()
            self.browser = Browser(self.dashboard.url, {"token": TOKEN}).connect()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.browser is not None:
            self.browser.close()
        self.dashboard.stop()
        self.bridge.kill()
        self.bridge.redis.close()
        self.mosquitto.stop()

    def api(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        return session

    def history_topics(self, prefix: str) -> list[str]:
        found = self.api().get(f"{self.dashboard.url}/api/messages", params={"limit": 1000}, timeout=10)
        if found.status_code != 200:
            return []
        return [m["topic"] for m in found.json()["messages"] if m["topic"].startswith(prefix)]

    def publish_command(self, topic: str) -> requests.Response:
        return self.api().post(
            f"{self.dashboard.url}/api/publish", json={"topic": topic, "payload": "on", "qos": 1}, timeout=20
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    found = RedisClusterSet(tmp_path_factory.mktemp("cluster")).start()
    yield found
    found.stop()


@pytest.fixture(scope="module")
def sentinel_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    found = SentinelSet(tmp_path_factory.mktemp("sentinel")).start()
    yield found
    found.stop()


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory, cluster: RedisClusterSet) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("cluster-stack"), cluster).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def sentinel_stack(tmp_path_factory: pytest.TempPathFactory, sentinel_set: SentinelSet) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("sentinel-stack"), sentinel_set).start()
    yield stack
    stack.stop()


def _healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "healthcheck"],
        env=env_with(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _end_to_end(stack: Stack, name: str) -> None:
    assert stack.browser is not None
    publish_all(stack.mosquitto.port, [(f"{name}/sensor/{n}", str(n).encode()) for n in range(20)])
    expected = [f"{name}/sensor/{n}" for n in range(20)]
    wait_for(lambda: stack.browser.received()[-20:] == expected, 15, what="the messages at the socket")  # type: ignore[union-attr]
    wait_for(lambda: sorted(stack.history_topics(f"{name}/")) == sorted(expected), 15, what="them in the API")

    with MqttRecorder(stack.mosquitto.port, f"{name}/valve") as subscriber:
        answer = stack.publish_command(f"{name}/valve")
        assert answer.status_code == 200, answer.text
        assert answer.json()["ok"] is True
        wait_for(lambda: subscriber.received(), 10, what="the published message at an MQTT subscriber")

    health = _healthcheck(stack.env)
    assert health.returncode == 0, health.stdout + health.stderr
    status = stack.api().get(f"{stack.dashboard.url}/health", timeout=10).json()
    assert status["redis"] is True and status["bridge"]["online"] is True


def _through_a_failover(stack: Stack, name: str, kill: Any, wait_promoted: Any) -> None:
    """Kill the Redis that serves a part of the data path, publish at QoS 1 while it is gone, and
    check that every message arrives once a replica has taken over, and that commands work."""
    assert stack.browser is not None
    killed = kill()
    during = [(f"{name}/during/{n}", b"x") for n in range(30)]
    publish_all(stack.mosquitto.port, during)  # the broker holds them until the bridge acknowledges
    wait_promoted(killed)
    publish_all(stack.mosquitto.port, [(f"{name}/after", b"y")])
    expected = sorted([t for t, _ in during] + [f"{name}/after"])
    wait_for(
        lambda: sorted(stack.history_topics(f"{name}/")) == expected, 40, 0.5, what="every message in the API"
    )
    # Live messages published while the dashboard's relay was resubscribing are not relayed (they
    # are in the history above): keep publishing until the socket hears one.
    probes = iter(range(1000))

    def heard() -> bool:
        publish_all(stack.mosquitto.port, [(f"live-{name}/{next(probes)}", b"z")], qos=0)
        return any(t.startswith(f"live-{name}/") for t in stack.browser.received())  # type: ignore[union-attr]

    wait_for(heard, 30, 0.5, what="the socket to hear new messages")

    def answered() -> bool:
        answer = stack.publish_command(f"{name}/valve")
        return answer.status_code == 200 and answer.json()["ok"] is True

    # The dashboard may answer 503/504 while its own connections find the new primary.
    wait_for(answered, 30, 1.0, what="a publish command to be answered after the failover")
    wait_for(lambda: _healthcheck(stack.env).returncode == 0, 20, 1.0, what="the healthcheck to pass again")
    stack.bridge.assert_alive()
    counters = protocol.loads_object(stack.bridge.redis.get(protocol.KEY_HEARTBEAT))
    assert counters is not None and counters["counters"]["dropped"] == 0, counters


# --- Cluster ------------------------------------------------------------------------------------


def test_bridge_and_dashboard_work_end_to_end_on_a_cluster(cluster_stack: Stack) -> None:
    _end_to_end(cluster_stack, "cluster")


@pytest.mark.parametrize(
    "key",
    [
        protocol.KEY_HISTORY,  # the writer's script (and its PUBLISH on mqtt:messages)
        protocol.CHANNEL_MESSAGES,  # the node the dashboard's relay listens on
        protocol.CHANNEL_COMMANDS,  # the bridge's command listener and the heartbeat
    ],
)
def test_a_cluster_primary_failover_is_survived(
    cluster_stack: Stack, cluster: RedisClusterSet, key: str
) -> None:
    name = "cfail" + str(abs(hash(key)) % 1000)
    killed: list[int] = []

    def kill() -> int:
        killed.append(cluster.kill_primary_for(key, wait=False))
        return killed[0]

    try:
        _through_a_failover(cluster_stack, name, kill, lambda port: cluster.wait_taken_over(key, port))
    finally:
        if killed:  # back as a replica, for the next failover
            cluster.restart(killed[0])


def test_a_cluster_refuses_a_database_other_than_0_in_one_line(cluster: RedisClusterSet) -> None:
    for argv in ([sys.executable, "-m", "bridge"], DashboardProcess.command()):
        result = subprocess.run(
            argv,
            env=env_with(**cluster.env(), REDIS_DB="2", DASHBOARD_TOKEN=TOKEN),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode != 0
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert "REDIS_DB must be 0 with REDIS_CLUSTER=true" in lines[0]


# --- Sentinel -----------------------------------------------------------------------------------


def test_bridge_and_dashboard_work_end_to_end_through_sentinel(sentinel_stack: Stack) -> None:
    _end_to_end(sentinel_stack, "sentinel")


def test_a_sentinel_failover_is_survived(sentinel_stack: Stack, sentinel_set: SentinelSet) -> None:
    before = sentinel_set.master_address()
    _through_a_failover(
        sentinel_stack, "sfail", lambda: sentinel_set.kill_master(wait=False), sentinel_set.wait_promoted
    )
    assert sentinel_set.master_address() != before


def test_a_sentinel_setup_without_a_master_name_is_one_clear_line(sentinel_set: SentinelSet) -> None:
    env = {k: v for k, v in sentinel_set.env().items() if k != "REDIS_SENTINEL_MASTER"}
    result = subprocess.run(
        [sys.executable, "-m", "bridge"],
        env=env_with(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "REDIS_SENTINEL_MASTER must be set" in lines[0], lines


# --- the one client builder -------------------------------------------------------------------


@pytest.mark.parametrize("topology", ["cluster", "sentinel_set"])
def test_the_version_check_runs_in_every_mode(
    request: pytest.FixtureRequest, topology: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = request.getfixturevalue(topology)
    monkeypatch.setattr(server_versions, "REDIS_MIN", (99, 0))  # every real server is now too old
    refusals: list[str] = []
    check = server_versions.RedisVersionCheck("mqtt-redis-bridge", on_refused=refusals.append)
    client = redis_sink.connect(RedisSettings.from_env(found.env()), check)
    try:
        assert server_versions.version_check_of(client) is check  # what gunicorn.conf.py acts on
        with pytest.raises(redis.ConnectionError) as refused:
            client.ping()
        assert "mqtt-redis-bridge needs ≥ 99.0" in str(refused.value)
        assert len(refusals) == 1 and refusals[0].endswith("mqtt-redis-bridge needs ≥ 99.0"), refusals
    finally:
        client.close()


def test_a_cluster_that_is_down_at_start_is_redis_being_away_not_a_crash() -> None:
    settings = RedisSettings.from_env(
        {"REDIS_CLUSTER": "true", "REDIS_URL": f"redis://127.0.0.1:{free_port()}"}
    )
    client = redis_sink.connect(settings)  # RedisCluster itself would raise here
    with pytest.raises(redis.ConnectionError):
        client.ping()
    with pytest.raises(redis.ConnectionError):
        redis_topology.subscriber(client, fresh=True)


def test_a_bridge_started_before_its_cluster_waits_for_it_and_outlives_it(tmp_path: Path) -> None:
    late = RedisClusterSet(tmp_path)  # ports chosen, nothing started yet
    mosquitto = start_mosquitto(tmp_path)
    bridge = BridgeProcess(tmp_path, mosquitto.port, 6379, **late.env())
    # Retained, so that it reaches the bridge whenever it subscribes, before or after Redis is up.
    publish_all(mosquitto.port, [("early/1", b"kept by the broker")], retain=True)

    def history_topics() -> list[str]:
        entries = bridge.redis.xrange(protocol.KEY_HISTORY)
        return [json.loads(fields[protocol.HISTORY_FIELD.encode()])["topic"] for _, fields in entries]

    try:
        bridge.start(wait_connected=False)
        # It runs, finds no cluster, and says so (once) rather than stopping.
        wait_for(lambda: "cannot update Redis" in bridge.output(), 15, what="the bridge to miss its cluster")
        bridge.assert_alive()
        late.start()
        bridge.redis = late.client()
        bridge.wait_connected(30)
        wait_for(lambda: "early/1" in history_topics(), 20, what="the retained message in history")
        assert "Traceback" not in bridge.output()

        # The whole cluster goes away: redis-py's cluster then raises RedisClusterException (no
        # RedisError); the programs see redis.ConnectionError, as with a standalone Redis that is down.
        client = redis_sink.connect(RedisSettings.from_env(late.env()))
        client.get(protocol.KEY_HEARTBEAT)
        late.stop()
        with pytest.raises(redis.ConnectionError):
            client.get(protocol.KEY_HEARTBEAT)
        with pytest.raises(redis.ConnectionError):
            client.pipeline(transaction=False).get(protocol.KEY_HEARTBEAT).execute()
        client.close()
        publish_all(mosquitto.port, [("late/1", b"while the cluster is away")])
        wait_for(
            lambda: bridge.output().count("cannot update Redis") == 2,
            20,
            what="the bridge to note the outage",
        )
        bridge.assert_alive()
        assert "Traceback" not in bridge.output() and "unexpected" not in bridge.output(), bridge.output()
    finally:
        bridge.kill()
        bridge.redis.close()
        mosquitto.stop()
        late.stop()


@pytest.mark.parametrize("topology", ["cluster", "sentinel_set"])
def test_sigterm_writes_the_final_status_in_every_mode(
    request: pytest.FixtureRequest, topology: str, tmp_path: Path
) -> None:
    """The last status at stop goes through a second client made with short timeouts
    (redis_topology.with_timeout), rebuilt from the same settings in each mode."""
    found = request.getfixturevalue(topology)
    mosquitto = start_mosquitto(tmp_path)
    bridge = BridgeProcess(tmp_path, mosquitto.port, 6379, **found.env())
    bridge.redis = found.client()
    # This module's stacks may run a bridge on the same Redis: tell the two apart by their broker.
    mine = f"127.0.0.1:{mosquitto.port}"
    recorder = ChannelRecorder(bridge.redis, protocol.CHANNEL_STATUS)
    try:
        bridge.start(wait_connected=False)
        recorder.wait(
            protocol.CHANNEL_STATUS, lambda m: m["broker"] == mine and m["connected"], 15, "connected"
        )
        code, seconds = bridge.stop(signal.SIGTERM)
        assert code == 0, bridge.output()
        assert seconds < 5
        final = recorder.wait(
            protocol.CHANNEL_STATUS,
            lambda m: m["broker"] == mine and m["reason"] == "the bridge stopped",
            5,
            "this bridge's final status",
        )
        assert final["connected"] is False
    finally:
        recorder.pubsub.close()
        bridge.kill()
        bridge.redis.close()
        mosquitto.stop()
