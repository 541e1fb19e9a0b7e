"""Commands through Redis against a real broker: answers, persistence across restarts, bad input."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import redis

from bridge.contract import protocol
from tests.helpers import MqttRecorder, Process, wait_for
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration


def _command(r: redis.Redis, channels: Any, **body: Any) -> dict[str, Any]:
    """Send a command and return the bridge's answer to it."""
    results = channels(protocol.CHANNEL_RESULTS)
    results.poll()
    raw = body.pop("raw", None)
    r.publish(protocol.CHANNEL_COMMANDS, raw if raw is not None else json.dumps(body))
    wanted = body.get("id") if isinstance(body.get("id"), str) else None
    return results.wait(protocol.CHANNEL_RESULTS, lambda m: m["id"] == wanted, 10, "the command's result")


def test_publish_command_reaches_an_mqtt_subscriber(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    with MqttRecorder(mosquitto.port, "lights/#") as subscriber:
        for qos in (0, 1, 2):
            result = _command(
                r,
                channels,
                type="cmd_publish",
                id=f"q{qos}",
                topic="lights/kitchen",
                payload=f"on{qos}",
                qos=qos,
            )
            assert (result["ok"], result["error"], result["command"]) == (True, None, "cmd_publish")
        binary = _command(
            r, channels, type="cmd_publish", id="bin", topic="lights/raw", payload="/wD+", encoding="base64"
        )
        assert binary["ok"] is True
        wait_for(lambda: len(subscriber.received()) == 4, 10, what="four messages at the subscriber")
        assert [(m.topic, m.payload) for m in subscriber.received()] == [
            ("lights/kitchen", b"on0"),
            ("lights/kitchen", b"on1"),
            ("lights/kitchen", b"on2"),
            ("lights/raw", b"\xff\x00\xfe"),
        ]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"raw": "this is not json", "id": None}, "not valid JSON"),
        ({"type": "cmd_publish", "id": "w", "topic": "a/+/c", "payload": "x"}, "wildcard"),
        ({"type": "cmd_subscribe", "id": "m", "topic": "a/#/b"}, "malformed"),
        ({"type": "cmd_publish", "id": "q", "topic": "a", "qos": 3}, "qos must be 0, 1 or 2"),
        ({"type": "cmd_publish", "id": "p", "topic": "a", "payload": 12}, "payload must be a string"),
        ({"type": "cmd_publish", "id": "b", "topic": "a", "payload": "!!", "encoding": "base64"}, "base64"),
        ({"type": "cmd_publish", "id": "l", "topic": "t" * 70_000}, "MQTT allows at most 65,535"),
        ({"type": "cmd_reboot", "id": "u", "topic": "a"}, "unknown command type"),
        ({"type": "cmd_publish", "id": None, "topic": ""}, "topic is empty"),
    ],
)
def test_bad_commands_get_clear_errors_and_the_bridge_carries_on(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any, body: dict[str, Any], words: str
) -> None:
    result = _command(r, channels, **body)
    assert result["ok"] is False
    assert words in result["error"]
    good = _command(r, channels, type="cmd_publish", id="after", topic="still/alive", payload="yes")
    assert good["ok"] is True
    bridge.assert_alive()


def test_subscriptions_survive_a_bridge_restart(
    make_bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    bridge = make_bridge(MQTT_TOPICS="config/#").start()
    assert _command(r, channels, type="cmd_subscribe", id="s", topic="extra/+", qos=1)["ok"] is True
    assert json.loads(r.hget(protocol.KEY_SUBSCRIPTIONS, "extra/+"))["qos"] == 1
    assert not r.hexists(protocol.KEY_SUBSCRIPTIONS, "config/#")  # configuration is not stored
    bridge.stop()

    bridge = make_bridge(MQTT_TOPICS="config/#").start()
    messages = channels(protocol.CHANNEL_MESSAGES)
    messages.poll()
    publish_all(
        mosquitto.port,
        [("extra/one", b"restored"), ("config/x", b"configured"), ("other/x", b"not subscribed")],
    )
    wait_for(lambda: len(messages.on(protocol.CHANNEL_MESSAGES)) >= 2, 10, what="both subscribed messages")
    topics = [m["topic"] for m in messages.on(protocol.CHANNEL_MESSAGES)]
    assert sorted(topics) == ["config/x", "extra/one"]

    result = _command(r, channels, type="cmd_unsubscribe", id="u", topic="extra/+")
    assert result["error"] is None
    bridge.stop()
    bridge = make_bridge(MQTT_TOPICS="config/#").start()
    messages = channels(protocol.CHANNEL_MESSAGES)
    messages.poll()
    publish_all(mosquitto.port, [("extra/two", b"gone"), ("config/y", b"marker")])
    wait_for(lambda: messages.on(protocol.CHANNEL_MESSAGES), 10)
    assert [m["topic"] for m in messages.on(protocol.CHANNEL_MESSAGES)] == ["config/y"]


def test_only_one_mqtt_connection_belongs_to_the_bridge(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    for i in range(5):
        assert _command(r, channels, type="cmd_publish", id=f"n{i}", topic="x", payload="1")["ok"]
    assert _command(r, channels, type="cmd_subscribe", id="s", topic="y/#")["ok"]
    log = mosquitto.log.read_text()
    assert len(re.findall(r"New client connected from \S+ as mqtt-bridge-service ", log)) == 1, log


def test_publish_while_the_broker_is_down_fails_fast(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    mosquitto.stop()
    wait_for(lambda: bridge.status()["connected"] is False, 10, what="the bridge to notice")
    result = _command(r, channels, type="cmd_publish", id="down", topic="a", payload="x")
    assert result["ok"] is False and "not connected" in result["error"]
    # subscribing while disconnected is kept and applied on reconnect
    assert _command(r, channels, type="cmd_subscribe", id="later", topic="later/#")["ok"] is True
    assert r.hexists(protocol.KEY_SUBSCRIPTIONS, "later/#")


def test_a_command_given_up_on_by_the_dashboard_is_never_run(
    bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    """The broker stalls: each QoS 1 publish waits 3 s for its PUBACK, so commands queue behind
    one another. The dashboard's round trip (5 s) sets expires_at; the queued ones are answered
    'expired' instead of actuating the device after the dashboard already said 504."""
    import signal
    import threading

    from dashboard.commands import NoAnswer, build_command, round_trip

    with MqttRecorder(mosquitto.port, "door/#") as subscriber:
        assert mosquitto.proc is not None
        mosquitto.proc.send_signal(signal.SIGSTOP)
        answers: dict[int, Any] = {}

        def send(n: int) -> None:
            body = build_command("cmd_publish", {"topic": "door/open", "payload": f"m{n}", "qos": 1})
            try:
                answers[n] = round_trip(r, body, 5.0)
            except NoAnswer as exc:
                answers[n] = str(exc)

        try:
            senders = [threading.Thread(target=send, args=(n,)) for n in range(3)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(15)
        finally:
            mosquitto.proc.send_signal(signal.SIGCONT)
        # Every command was answered by the bridge within the dashboard's 5 s: none ran late.
        assert all(isinstance(a, dict) for a in answers.values()), answers
        expired = [a for a in answers.values() if "expired" in (a["error"] or "")]
        assert len(expired) == 2, answers
        assert all(a["ok"] is False and "it was not run" in a["error"] for a in expired)
        # The one that ran was published; the expired ones never reach the broker.
        marker = round_trip(r, build_command("cmd_publish", {"topic": "door/marker", "qos": 1}), 5.0)
        assert marker["ok"] is True
        wait_for(lambda: subscriber.received(lambda m: m.topic == "door/marker"), 10, what="the marker")
        assert len(subscriber.received(lambda m: m.topic == "door/open")) <= 1


def test_a_command_with_a_number_id_is_refused_and_not_run(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    with MqttRecorder(mosquitto.port, "id/#") as subscriber:
        result = _command(r, channels, type="cmd_publish", id=42, topic="id/test", payload="x")
        assert result["ok"] is False and "id must be a string" in result["error"]
        marker = _command(r, channels, type="cmd_publish", id="m", topic="id/marker", qos=1)
        assert marker["ok"] is True
        wait_for(lambda: subscriber.received(lambda m: m.topic == "id/marker"), 10, what="the marker")
        assert subscriber.received(lambda m: m.topic == "id/test") == []
