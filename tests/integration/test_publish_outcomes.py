"""What a publish command's answer promises, against real brokers: an answer of "failed" means the
message never reaches anyone, not even after the broker wakes up or restarts (issue 21, defect 2);
a publish that may have been delivered says its outcome is unknown; a refusal in PUBACK/PUBREC is
a failure (defect 13); a publish above the broker's maximum packet size is refused before it is
sent, and nothing makes the bridge send a refused packet again (issue 24).

Only what a client sees is asserted (answers, messages at a subscriber, the bridge's status), never
broker log lines, so the tests run unchanged on mosquitto 2.0 and 2.1.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.contract import protocol
from tests.helpers import BridgeProcess, MqttRecorder, Process, start_mosquitto, wait_for

pytestmark = pytest.mark.integration

# Started as root, mosquitto would become the "mosquitto" user, which cannot read pytest's folders.
AS_ME = f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
UNKNOWN = "it had already been sent, so it may still reach subscribers (the bridge will not send it again)"
NEVER_SENT = "it was never sent, and the bridge will not send it later"


def command(r: redis.Redis, channels: Any, wait: float = 15.0, **body: Any) -> dict[str, Any]:
    """Send one command on Redis and return the bridge's answer to it."""
    body.setdefault("id", uuid.uuid4().hex)
    results = channels(protocol.CHANNEL_RESULTS)
    r.publish(protocol.CHANNEL_COMMANDS, json.dumps(body))
    return results.wait(
        protocol.CHANNEL_RESULTS, lambda m: m["id"] == body["id"], wait, f"the answer to {body['id']}"
    )


def publish(
    r: redis.Redis, channels: Any, topic: str, payload: str = "", qos: int = 1, **extra: Any
) -> dict[str, Any]:
    return command(r, channels, type="cmd_publish", topic=topic, payload=payload, qos=qos, **extra)


class frozen:
    """The broker stopped with SIGSTOP: its sockets stay open, it reads and answers nothing."""

    def __init__(self, broker: Process):
        assert broker.proc is not None
        self.proc = broker.proc

    def __enter__(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def __exit__(self, *exc_info: object) -> None:
        self.proc.send_signal(signal.SIGCONT)


class SessionRecorder:
    """An MQTT 5 subscriber with a persistent session, so a broker that restarts from its
    persistence file keeps queueing for it while it reconnects."""

    def __init__(self, port: int, topic_filter: str):
        self.messages: list[tuple[str, bytes]] = []
        self.sessions_present: list[bool] = []  # per connect: did the broker still hold the session?
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"rec-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )

        def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            self.sessions_present.append(bool(flags.session_present))
            client.subscribe(topic_filter, qos=1)

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.reconnect_delay_set(0.2, 1)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 300
        self.client.connect("127.0.0.1", port, clean_start=False, properties=properties)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 10, what="the recorder's subscription")

    def topics(self) -> list[str]:
        return [topic for topic, _ in list(self.messages)]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client.on_connect = self.client.on_subscribe = self.client.on_message = None


# --- defect 2: an answer of "failed" is final -------------------------------------------------


@pytest.fixture
def big_packets_broker(workdir: Path) -> Iterator[Process]:
    # mosquitto 2.1 takes packets of 2,000,000 bytes at most by default; these tests need more.
    proc = start_mosquitto(workdir, extra="max_packet_size 268435455\n")
    yield proc
    proc.stop()


def test_with_the_broker_frozen_failed_publishes_never_arrive_and_sent_ones_say_unknown(
    workdir: Path, big_packets_broker: Process, redis_server: Process, r: redis.Redis, channels: Any
) -> None:
    """SIGSTOP: the first publish (8 MB, more than the sockets' buffers hold) is partly on the wire;
    the ones behind it are not. None is acknowledged within 3 s. Then SIGCONT."""
    broker = big_packets_broker
    bridge = BridgeProcess(workdir, broker.port, redis_server.port).start()
    try:
        with MqttRecorder(broker.port, ["valve/#", "door/#"]) as subscriber:
            assert publish(r, channels, "door/status", "locked", retain=True)["ok"] is True
            with frozen(broker):
                on_the_wire = publish(r, channels, "valve/1", "x" * 8_000_000)
                queued = publish(r, channels, "valve/2", "open")
                clear = command(r, channels, type="cmd_clear_retained", topic="door/status")
            # The broker wakes: what was on the wire arrives; nothing answered "failed" ever does.
            marker = publish(r, channels, "valve/marker", "after")
            wait_for(lambda: subscriber.received(lambda m: m.topic == "valve/marker"), 15, what="the marker")
            received = [m.topic for m in subscriber.received()]
        with MqttRecorder(broker.port, "door/#") as late:
            retained = wait_for(
                lambda: late.received(lambda m: m.topic == "door/status"), 10, what="door/status"
            )
    finally:
        bridge.kill()

    assert (on_the_wire["ok"], on_the_wire.get("outcome")) == (False, protocol.OUTCOME_UNKNOWN)
    assert on_the_wire["error"] == f"the broker did not acknowledge the publish within 3 s; {UNKNOWN}"
    assert (queued["ok"], queued.get("outcome")) == (False, None)
    assert queued["error"] == f"the broker did not acknowledge the publish within 3 s; {NEVER_SENT}"
    assert (clear["ok"], clear.get("outcome"), clear["result"]["cleared"]) == (False, None, 0)
    assert NEVER_SENT in clear["error"]
    assert marker["ok"] is True
    assert "valve/2" not in received  # answered "failed": never delivered
    assert received.count("valve/1") <= 1  # "unknown": delivered at most once, never resent
    assert retained[0].payload == b"locked"  # the clear answered "failed" did not clear it


@pytest.fixture
def persistent_broker(workdir: Path) -> Iterator[Process]:
    """A broker that saves its sessions at every change, so a kill -9 keeps the recorder's."""
    data = workdir / "mosquitto-data"
    data.mkdir()
    proc = start_mosquitto(
        workdir,
        extra=f"persistence true\npersistence_location {data}/\n"
        "autosave_on_changes true\nautosave_interval 1\n" + AS_ME,
    )
    yield proc
    proc.stop()


def test_a_publish_sent_before_the_broker_restarts_is_never_sent_again(
    workdir: Path, persistent_broker: Process, redis_server: Process, r: redis.Redis, channels: Any
) -> None:
    """The PUBLISH reached the broker's socket, the broker died before acknowledging it: paho would
    send it again on the next connection (20-30 s after the answer, past any expiry)."""
    broker = persistent_broker
    bridge = BridgeProcess(workdir, broker.port, redis_server.port).start()
    recorder = SessionRecorder(broker.port, "valve/#")
    saved = workdir / "mosquitto-data"
    wait_for(lambda: any(saved.iterdir()), 10, what="the broker to save the recorder's session")
    try:
        with frozen(broker):
            answer = publish(r, channels, "valve/1", "open")
            assert broker.proc is not None
            broker.proc.kill()  # SIGKILL works on a stopped process: the bytes in its socket are lost
            broker.proc.wait(10)
        broker.start()  # same port, same persistence file: the recorder's session is back
        bridge.wait_connected(30)
        marker = publish(r, channels, "valve/marker", "after the restart")
        wait_for(lambda: "valve/marker" in recorder.topics(), 15, what="the marker at the recorder")
    finally:
        recorder.stop()
        bridge.kill()

    assert (answer["ok"], answer.get("outcome")) == (False, protocol.OUTCOME_UNKNOWN), answer
    assert marker["ok"] is True
    assert recorder.sessions_present[-1] is True  # the restarted broker queued for the recorder throughout
    assert "valve/1" not in recorder.topics()  # not resent after the reconnect


# --- defect 13: refusals in PUBACK / PUBREC ----------------------------------------------------


@pytest.fixture
def acl_broker(workdir: Path) -> Iterator[Process]:
    """Anonymous clients may read everything but write only under allowed/."""
    acl = workdir / "acl"
    acl.write_text("topic read #\ntopic read $SYS/#\ntopic readwrite allowed/#\n")
    proc = start_mosquitto(workdir, extra=f"acl_file {acl}\n" + AS_ME)
    yield proc
    proc.stop()


def test_a_publish_or_clear_the_broker_refuses_is_a_failure_in_its_words(
    workdir: Path, acl_broker: Process, redis_server: Process, r: redis.Redis, channels: Any
) -> None:
    bridge = BridgeProcess(workdir, acl_broker.port, redis_server.port).start()
    try:
        with MqttRecorder(acl_broker.port, "#") as subscriber:
            refused_qos1 = publish(r, channels, "denied/a", "1", qos=1)
            refused_qos2 = publish(r, channels, "denied/b", "2", qos=2)
            clear = command(r, channels, type="cmd_clear_retained", topic="denied/c")
            allowed = publish(r, channels, "allowed/marker", "ok", qos=1)
            wait_for(
                lambda: subscriber.received(lambda m: m.topic == "allowed/marker"), 10, what="the marker"
            )
            received = [m.topic for m in subscriber.received()]
    finally:
        bridge.kill()

    for answer in (refused_qos1, refused_qos2):
        assert (answer["ok"], answer["error"]) == (False, "the broker refused the publish: Not authorized")
    assert clear["ok"] is False and clear["result"]["cleared"] == 0
    assert clear["error"] == "stopped after clearing 0 of 1: the broker refused the publish: Not authorized"
    assert allowed["ok"] is True
    assert not [t for t in received if t.startswith("denied/")]


# --- defect 12: the broker's own topics --------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"type": "cmd_publish", "topic": "$SYS/broker/version", "payload": "0.0"},
        {"type": "cmd_publish", "topic": "$CONTROL/dynamic-security/v1", "payload": "{}"},
        {"type": "cmd_clear_retained", "topic": "$SYS/broker/version"},
        {"type": "cmd_clear_retained", "topic": "$SYS/#"},
    ],
)
def test_publishing_to_or_clearing_the_brokers_own_topics_is_refused_in_words(
    bridge: BridgeProcess, mosquitto: Process, r: redis.Redis, channels: Any, body: dict[str, Any]
) -> None:
    answer = command(r, channels, **body)

    assert answer["ok"] is False and "starts with '$'" in answer["error"], answer
    assert "belong to the broker" in answer["error"] or "not the bridge's to clear" in answer["error"]


# --- issue 24: the broker's maximum packet size -------------------------------------------------

LIMIT = 2000
# A QoS 1 PUBLISH on "big/t" is 13 bytes besides its payload over MQTT 5 (fixed header 3, topic
# 2 + 5, packet id 2, empty property block 1), 12 over MQTT 3.1.1.
FITS_MQTT5 = LIMIT - 13


@pytest.fixture
def small_packets_broker(workdir: Path) -> Iterator[Process]:
    proc = start_mosquitto(workdir, extra=f"max_packet_size {LIMIT}\n")
    yield proc
    proc.stop()


def test_a_publish_above_the_maximum_packet_size_from_connack_is_refused_before_it_is_sent(
    workdir: Path, small_packets_broker: Process, redis_server: Process, r: redis.Redis, channels: Any
) -> None:
    bridge = BridgeProcess(workdir, small_packets_broker.port, redis_server.port).start()
    try:
        since = bridge.status()["since"]  # type: ignore[index]
        with MqttRecorder(small_packets_broker.port, "big/#") as subscriber:
            fits = publish(r, channels, "big/t", "x" * FITS_MQTT5)
            too_big = publish(r, channels, "big/t", "y" * (FITS_MQTT5 + 1))
            far_too_big = publish(r, channels, "big/t", "z" * 100_000, qos=0)
            marker = publish(r, channels, "big/marker", "m")
            wait_for(lambda: subscriber.received(lambda m: m.topic == "big/marker"), 10, what="the marker")
            sizes = [len(m.payload) for m in subscriber.received(lambda m: m.topic == "big/t")]
        status = bridge.status()
    finally:
        bridge.kill()

    assert fits["ok"] is True and marker["ok"] is True
    assert too_big["ok"] is False and too_big.get("outcome") is None
    assert too_big["error"] == (
        "the message is 2,001 bytes as an MQTT packet, and the broker at "
        f"127.0.0.1:{small_packets_broker.port} "
        "takes at most 2,000 (the maximum packet size it announced when the bridge connected); "
        "nothing was published"
    )
    assert far_too_big["ok"] is False and "nothing was published" in far_too_big["error"]
    assert sizes == [FITS_MQTT5]
    # The connection never dropped: nothing too large was ever sent.
    assert status is not None and status["connected"] is True and status["since"] == since


def test_on_mqtt_3_1_1_the_limit_comes_from_mqtt_max_packet_size(
    workdir: Path, small_packets_broker: Process, redis_server: Process, r: redis.Redis, channels: Any
) -> None:
    bridge = BridgeProcess(
        workdir,
        small_packets_broker.port,
        redis_server.port,
        MQTT_PROTOCOL="3.1.1",
        MQTT_MAX_PACKET_SIZE=str(LIMIT),
    ).start()
    try:
        since = bridge.status()["since"]  # type: ignore[index]
        fits = publish(r, channels, "big/t", "x" * (FITS_MQTT5 + 1))  # no property block on 3.1.1
        too_big = publish(r, channels, "big/t", "x" * (FITS_MQTT5 + 2))
        status = bridge.status()
    finally:
        bridge.kill()

    assert fits["ok"] is True
    assert too_big["ok"] is False and "takes at most 2,000 (MQTT_MAX_PACKET_SIZE)" in too_big["error"]
    assert status is not None and status["connected"] is True and status["since"] == since


def test_a_packet_the_broker_drops_the_connection_for_is_never_sent_again(
    workdir: Path, small_packets_broker: Process, redis_server: Process, r: redis.Redis, channels: Any
) -> None:
    """MQTT 3.1.1 and no MQTT_MAX_PACKET_SIZE: the bridge cannot know the limit, sends the packet,
    and the broker drops the connection. paho would send it again from its session on every
    reconnect, and the bridge would loop for good; here it reconnects once and stays."""
    bridge = BridgeProcess(
        workdir, small_packets_broker.port, redis_server.port, MQTT_PROTOCOL="3.1.1"
    ).start()
    try:
        answer = publish(r, channels, "big/t", "x" * 5000)
        bridge.wait_connected(15)
        marker = publish(r, channels, "big/marker", "still here")

        def reconnects() -> int:
            return int(
                json.loads(r.get(protocol.KEY_HEARTBEAT) or b"{}").get("counters", {}).get("reconnects", 0)
            )

        # The heartbeat (every 5 s) counts the one reconnect; a bridge sending the packet again
        # would be dropped again at once and never stay connected for the marker.
        counted = wait_for(lambda: reconnects() >= 1 and reconnects(), 15, what="the reconnect counted")
        status = bridge.status()
    finally:
        bridge.kill()

    assert (answer["ok"], answer.get("outcome")) == (False, protocol.OUTCOME_UNKNOWN), answer
    assert answer["error"].startswith(
        "the connection to the broker was lost before it acknowledged the publish"
    )
    assert marker["ok"] is True
    assert status is not None and status["connected"] is True
    assert counted == 1
