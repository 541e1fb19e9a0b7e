"""Integration fixtures: real redis-server and mosquitto on free loopback ports, and the real
bridge as a subprocess (``python -m bridge``), exactly as a user runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests import mosquitto_bin
from tests.helpers import BridgeProcess, Process, ShippedMosquitto, start_mosquitto, start_redis, wait_for

pytestmark = pytest.mark.integration


def pytest_report_header() -> str:
    return mosquitto_bin.describe()  # MOSQUITTO_BIN picks the broker (docs/operations.md)


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
def shipped_broker(tmp_path: Path) -> Iterator[ShippedMosquitto]:
    """The real broker running the shipped mosquitto/mosquitto.conf, on free ports."""
    proc = ShippedMosquitto(tmp_path)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def r(redis_server: Process) -> redis.Redis:
    return redis.Redis(port=redis_server.port, socket_timeout=5)


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
