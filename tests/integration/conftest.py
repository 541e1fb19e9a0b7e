"""Integration fixtures: real redis-server and mosquitto on free loopback ports, and the real
bridge as a subprocess (``python -m bridge``), exactly as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge import protocol
from tests.helpers import Process, env_with, start_mosquitto, start_redis, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def redis_server(workdir: Path) -> Iterator[Process]:
    proc = start_redis(workdir)
    yield proc
    proc.stop()


@pytest.fixture
def mosquitto(workdir: Path) -> Iterator[Process]:
    proc = start_mosquitto(workdir)
    yield proc
    proc.stop()


@pytest.fixture
def r(redis_server: Process) -> redis.Redis:
    return redis.Redis(port=redis_server.port, socket_timeout=5)


class BridgeProcess:
    """``python -m bridge`` with test settings; the log is kept for failure messages."""

    def __init__(self, workdir: Path, broker_port: int, redis_port: int, **settings: str):
        defaults = {
            "MQTT_BROKER_HOST": "127.0.0.1",
            "MQTT_BROKER_PORT": str(broker_port),
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(redis_port),
            "MQTT_TOPICS": "#",
            "STATS_INTERVAL": "1",
            "LOG_LEVEL": "INFO",
        }
        self.env = env_with(**{**defaults, **settings})
        self.log = workdir / f"bridge-{time.monotonic_ns()}.log"
        self.redis = redis.Redis(port=redis_port, socket_timeout=5)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_connected: bool = True) -> BridgeProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge"], env=self.env, stdout=out, stderr=out
            )
        if wait_connected:
            self.wait_connected()
        return self

    def status(self) -> dict[str, Any] | None:
        try:
            return protocol.loads_object(self.redis.get(protocol.KEY_STATUS_LATEST))
        except redis.RedisError:
            return None

    def wait_connected(self, timeout: float = 15.0) -> None:
        def connected() -> bool:
            self.assert_alive()
            status = self.status()
            return bool(status and status["connected"] and self.redis.exists(protocol.KEY_HEARTBEAT))

        wait_for(connected, timeout, what="the bridge to report connected")

    def assert_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"bridge exited with {self.proc.returncode}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        """Send ``sig``; returns (exit code, seconds it took to exit)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"bridge ignored {sig} for 10 s:\n{self.output()}") from None
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def make_bridge(workdir: Path, mosquitto: Process, redis_server: Process) -> Iterator[Any]:
    started: list[BridgeProcess] = []

    def make(**settings: str) -> BridgeProcess:
        bridge = BridgeProcess(workdir, mosquitto.port, redis_server.port, **settings)
        started.append(bridge)
        return bridge

    yield make
    for bridge in started:
        bridge.kill()


@pytest.fixture
def bridge(make_bridge: Any) -> BridgeProcess:
    return make_bridge().start()


class ChannelRecorder:
    """Subscribes to Redis channels and collects the JSON messages, in order."""

    def __init__(self, client: redis.Redis, *channels: str):
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(*channels)
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def poll(self) -> list[tuple[str, dict[str, Any]]]:
        while (message := self.pubsub.get_message(timeout=0.01)) is not None:
            if message["type"] == "message":
                self.messages.append((message["channel"].decode(), json.loads(message["data"])))
        return self.messages

    def on(self, channel: str) -> list[dict[str, Any]]:
        self.poll()
        return [m for c, m in self.messages if c == channel]

    def wait(self, channel: str, predicate: Any, timeout: float = 10.0, what: str = "") -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.on(channel) if predicate(m)), None)

        return wait_for(found, timeout, what=what or f"a message on {channel}")


@pytest.fixture
def channels(r: redis.Redis) -> Any:
    def record(*names: str) -> ChannelRecorder:
        return ChannelRecorder(r, *names)

    return record
