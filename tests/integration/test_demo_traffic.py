"""`mqtt-redis-bridge demo` against the real broker (shipped config): every kind of traffic shows up."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import redis

from bridge.contract import protocol
from bridge.demo import run_demo
from tests.helpers import MqttRecorder, ShippedMosquitto, env_with, start_redis, wait_for

pytestmark = pytest.mark.integration


class DemoThread:
    """run_demo in a thread, stopped (and checked to have stopped) at the end of the test."""

    def __init__(self, port: int, prefix: str, **options: object):
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run_demo,
            args=("127.0.0.1", port),
            kwargs={"rate": 5.0, "stop": self.stop, "prefix": prefix, "seed": 1, **options},
            daemon=True,
        )

    def __enter__(self) -> DemoThread:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "run_demo did not return after stop was set"


def is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_demo_publishes_json_retained_status_and_binary(shipped_broker: ShippedMosquitto) -> None:
    prefix = f"demo-{uuid.uuid4().hex[:6]}"
    with MqttRecorder(shipped_broker.port, f"{prefix}/#") as live, DemoThread(shipped_broker.port, prefix):
        telemetry = wait_for(
            lambda: live.received(lambda m: m.topic.endswith("/climate-1/telemetry")),
            5,
            what="climate telemetry",
        )
        reading = json.loads(telemetry[0].payload)
        assert {"temperature", "humidity", "battery"} <= set(reading)

        binary = wait_for(lambda: live.received(lambda m: not is_utf8(m.payload)), 5, what="a binary payload")
        assert binary[0].topic.endswith("/camera-1/snapshot")
        assert binary[0].payload.startswith(b"\x89PNG")

        # Someone who subscribes later is told each device's state by the retained status.
        with MqttRecorder(shipped_broker.port, f"{prefix}/+/+/+/+/status") as late:
            statuses = wait_for(lambda: len(late.received()) >= 6 and late.received(), 5, what="6 statuses")
        assert all(m.retain and m.payload == b"online" for m in statuses)

    # Stopped: every device said goodbye with a retained "offline".
    with MqttRecorder(shipped_broker.port, f"{prefix}/+/+/+/+/status") as after:
        wait_for(lambda: len(after.received()) >= 6, 5, what="6 statuses after stopping")
    assert {m.payload for m in after.received()} == {b"offline"}


def test_flaky_device_drops_off_and_comes_back_under_its_own_client_id(
    shipped_broker: ShippedMosquitto,
) -> None:
    prefix = f"flaky-{uuid.uuid4().hex[:6]}"
    status_topic = f"{prefix}/building-1/floor-3/lab/freezer-1/status"
    with (
        MqttRecorder(shipped_broker.port, [status_topic, "$SYS/broker/log/N"]) as seen,
        DemoThread(shipped_broker.port, prefix, flaky_times=(1.0, 0.5)),
    ):

        def went_offline_and_came_back() -> bool:
            states = [m.payload for m in seen.received(lambda m: m.topic == status_topic)]
            return b"offline" in states and b"online" in states[states.index(b"offline") :]

        wait_for(went_offline_and_came_back, 10, what="the freezer to drop (last will) and come back")
        log = [m.payload.decode() for m in seen.received(lambda m: m.topic.startswith("$SYS/"))]
    connects = [line for line in log if f" as {prefix}-freezer-1 " in line]
    assert len(connects) >= 2


def test_the_bridge_forwards_demo_traffic_into_redis(
    shipped_broker: ShippedMosquitto, tmp_path: Path
) -> None:
    redis_proc = start_redis(tmp_path)
    env = env_with(
        MQTT_BROKER_HOST="127.0.0.1",
        MQTT_BROKER_PORT=str(shipped_broker.port),
        MQTT_CLIENT_ID=f"bridge-{uuid.uuid4().hex[:6]}",
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(redis_proc.port),
        STATS_INTERVAL="1",
    )
    env.pop("REDIS_URL", None)
    bridge = subprocess.Popen(
        [sys.executable, "-m", "bridge"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    db = redis.Redis(port=redis_proc.port, decode_responses=True)
    prefix = f"fwd-{uuid.uuid4().hex[:6]}"
    try:

        def bridge_connected() -> bool:
            raw = db.get(protocol.KEY_STATUS_LATEST)
            return bool(raw) and json.loads(raw)["connected"] is True

        wait_for(bridge_connected, 15, what="the bridge to report connected")
        with DemoThread(shipped_broker.port, prefix):

            def forwarded() -> list[dict]:
                entries = db.xrange(protocol.KEY_HISTORY)
                messages = [json.loads(fields[protocol.HISTORY_FIELD]) for _, fields in entries]
                return [m for m in messages if m["topic"].startswith(f"{prefix}/")]

            def has_json_and_binary() -> bool:
                messages = forwarded()
                return any(m["topic"].endswith("/telemetry") for m in messages) and any(
                    m["encoding"] == protocol.ENCODING_BASE64 for m in messages
                )

            wait_for(has_json_and_binary, 10, what="demo telemetry and a base64 snapshot in mqtt:history")
    finally:
        bridge.terminate()
        output = bridge.communicate(timeout=10)[0].decode(errors="replace")
        db.close()
        redis_proc.stop()
    assert bridge.returncode == 0, output
