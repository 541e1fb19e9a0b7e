"""The shipped mosquitto configs run on the real broker and do what docs/mosquitto.md says."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bridge.insight.clients import ClientTracker
from tests.helpers import (
    DYNSEC_PLUGIN,
    MOSQUITTO_SECURED_CONF,
    MOSQUITTO_VERSION,
    REPO,
    MqttRecorder,
    ShippedMosquitto,
    wait_for,
)
from tests.mosquitto_bin import run_tool

pytestmark = pytest.mark.integration


def connect_and_leave(port: int, client_id: str, transport: str = "tcp") -> None:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        transport=transport,  # type: ignore[arg-type]
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    wait_for(client.is_connected, 5, what=f"{client_id} to connect")
    client.disconnect()
    client.loop_stop()


def test_websocket_listener_answers_an_http_upgrade(shipped_broker: ShippedMosquitto) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /mqtt HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{shipped_broker.ws_port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", shipped_broker.ws_port), timeout=5) as sock:
        sock.sendall(request.encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 101"), status_line


def test_client_log_lines_reach_sys_topics_for_tcp_and_websocket_clients(
    shipped_broker: ShippedMosquitto,
) -> None:
    with MqttRecorder(shipped_broker.port, "$SYS/broker/log/#") as log:
        connect_and_leave(shipped_broker.port, "config-test-tcp")
        connect_and_leave(shipped_broker.ws_port, "config-test-ws", transport="websockets")

        def lines() -> list[str]:
            return [m.payload.decode() for m in log.received(lambda m: m.topic == "$SYS/broker/log/N")]

        wait_for(
            lambda: any(
                "New client connected from" in line and " as config-test-ws " in line for line in lines()
            ),
            5,
            what="the websocket client's connect line on $SYS/broker/log/N",
        )
        text = "\n".join(lines())
    assert "as config-test-tcp (p5" in text
    # The disconnect line is worded differently by 2.0 and 2.1; the client list reads both.
    tracker = ClientTracker()
    changes = [tracker.update("$SYS/broker/log/N", line.encode(), 1.0) for line in text.splitlines()]
    assert sum(changes) >= 3 and "config-test-tcp" not in {c["client_id"] for c in tracker.snapshot()}


def test_sys_statistics_arrive_within_the_bridge_interval(shipped_broker: ShippedMosquitto) -> None:
    # sys_interval 5: a fresh uptime value (not only the retained one) arrives within ~5 s.
    with MqttRecorder(shipped_broker.port, "$SYS/broker/uptime") as uptime:
        wait_for(lambda: len(uptime.received()) >= 2, 8, what="two $SYS/broker/uptime updates")
    assert uptime.received()[-1].payload.decode().endswith(" seconds")


def test_retained_messages_survive_a_restart(shipped_broker: ShippedMosquitto) -> None:
    publisher = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="config-test-pub", protocol=mqtt.MQTTv5
    )
    publisher.connect("127.0.0.1", shipped_broker.port)
    publisher.loop_start()
    publisher.publish("config-test/state", b"kept", qos=1, retain=True).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()

    shipped_broker.restart()  # persistence_location is written at exit and read back at start

    with MqttRecorder(shipped_broker.port, "config-test/state") as reader:
        wait_for(reader.received, 5, what="the retained message after a restart")
    assert reader.received()[0].payload == b"kept"
    assert "Error" not in shipped_broker.log.read_text()


@pytest.fixture(
    params=[
        "mosquitto.secured.conf",
        pytest.param(
            "mosquitto.secured-2.1.conf",
            marks=pytest.mark.skipif(MOSQUITTO_VERSION < (2, 1), reason="the plugins it loads came with 2.1"),
        ),
    ]
)
def secured_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ShippedMosquitto]:
    passwd = tmp_path / "passwd"
    for user, password in (("mqtt-bridge", "bridge-secret"), ("demo", "demo-secret")):
        create = ["-c"] if not passwd.exists() else []
        run_tool("mosquitto_passwd", *create, "-b", str(passwd), user, password)
    acl = REPO / "mosquitto" / "acl.example"
    if request.param == MOSQUITTO_SECURED_CONF.name:
        paths = {"password_file": passwd, "acl_file": acl}
    else:
        paths = {"plugin_opt_password_file": passwd, "plugin_opt_acl_file": acl}
    source = REPO / "mosquitto" / request.param
    proc = ShippedMosquitto(tmp_path, source=source, paths=paths, plugin_dir=Path(DYNSEC_PLUGIN).parent)
    proc.start()
    yield proc
    proc.stop()


def test_secured_example_refuses_anonymous_clients(secured_broker: ShippedMosquitto) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="anonymous", protocol=mqtt.MQTTv5)
    results: list[mqtt.ReasonCode] = []
    client.on_connect = lambda c, u, f, reason_code, p: results.append(reason_code)
    client.connect("127.0.0.1", secured_broker.port)
    client.loop_start()
    try:
        wait_for(lambda: results, 5, what="the broker's answer to an anonymous client")
    finally:
        client.disconnect()
        client.loop_stop()
    assert results[0].is_failure


def test_secured_example_lets_only_the_bridge_read_sys(secured_broker: ShippedMosquitto) -> None:
    bridge = MqttRecorder(
        secured_broker.port,
        ["$SYS/broker/uptime", "demo/#"],
        username="mqtt-bridge",
        password="bridge-secret",
    )
    demo = MqttRecorder(
        secured_broker.port, ["$SYS/broker/uptime", "demo/#"], username="demo", password="demo-secret"
    )
    with bridge, demo:
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-sender", protocol=mqtt.MQTTv5)
        sender.username_pw_set("demo", "demo-secret")
        sender.connect("127.0.0.1", secured_broker.port)
        sender.loop_start()
        sender.publish("demo/room/temperature", b"21.5", qos=1).wait_for_publish(5)
        sender.disconnect()
        sender.loop_stop()

        def bridge_saw_both() -> bool:
            topics = {m.topic for m in bridge.received()}
            return {"$SYS/broker/uptime", "demo/room/temperature"} <= topics

        wait_for(bridge_saw_both, 8, what="the bridge user to receive $SYS and demo traffic")
        wait_for(lambda: demo.received(lambda m: m.topic.startswith("demo/")), 5, what="demo traffic")
    # The ACL denies $SYS to every user but the bridge: the subscription is accepted, nothing arrives.
    assert not demo.received(lambda m: m.topic.startswith("$SYS/"))
