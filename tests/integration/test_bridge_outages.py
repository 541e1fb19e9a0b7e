"""Redis and the broker restarted under a running bridge: it recovers by itself and says so."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis

from bridge.contract import protocol
from tests.helpers import Process, wait_for
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration


def _heartbeat(r: redis.Redis) -> dict[str, Any] | None:
    try:
        return protocol.loads_object(r.get(protocol.KEY_HEARTBEAT))
    except redis.RedisError:
        return None


class SteadyPublisher(threading.Thread):
    """Publishes a numbered message every few milliseconds until stopped."""

    def __init__(self, port: int, topic: str):
        super().__init__(daemon=True)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.topic = topic
        self.sent = 0
        self.halt = threading.Event()

    def run(self) -> None:
        self.client.loop_start()
        while not self.halt.wait(0.005):
            self.client.publish(self.topic, str(self.sent).encode(), qos=1).wait_for_publish(5)
            self.sent += 1
        self.client.disconnect()
        self.client.loop_stop()


def test_redis_restart_mid_stream(
    bridge: Any, mosquitto: Process, redis_server: Process, r: redis.Redis
) -> None:
    publisher = SteadyPublisher(mosquitto.port, "stream/a")
    publisher.start()
    try:
        wait_for(lambda: r.xlen(protocol.KEY_HISTORY) > 20, 10, what="messages before the outage")
        redis_server.stop()
        wait_for(lambda: publisher.sent > 200, 10)  # traffic goes on while Redis is away
        redis_server.start()
        wait_for(lambda: r.exists(protocol.KEY_HISTORY), 20, what="history to resume after the restart")
        sent_at_check = publisher.sent
        wait_for(
            lambda: any(
                int(json.loads(f[b"data"])["payload"]) > sent_at_check
                for _, f in r.xrevrange(protocol.KEY_HISTORY, count=5)
            ),
            15,
            what="fresh messages after the restart",
        )
    finally:
        publisher.halt.set()
        publisher.join(5)
    bridge.assert_alive()
    heartbeat = wait_for(lambda: _heartbeat(r), 10, what="the heartbeat after the restart")
    counters = heartbeat["counters"]
    # Held in the queue while Redis was away: everything received was forwarded or counted.
    assert counters["received"] >= publisher.sent
    status = wait_for(
        lambda: protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST)), 15, what="status restored"
    )
    assert status["connected"] is True
    assert "Redis is back" in bridge.output()


def test_nothing_is_lost_in_a_short_redis_restart(
    bridge: Any, mosquitto: Process, redis_server: Process, r: redis.Redis
) -> None:
    redis_server.stop()
    publish_all(mosquitto.port, [("held/x", str(i).encode()) for i in range(300)])
    redis_server.start()
    wait_for(
        lambda: (
            len([1 for _, f in r.xrange(protocol.KEY_HISTORY) if json.loads(f[b"data"])["topic"] == "held/x"])
            == 300
        ),
        20,
        what="all 300 messages queued during the outage",
    )
    payloads = [json.loads(f[b"data"])["payload"] for _, f in r.xrange(protocol.KEY_HISTORY)]
    assert [p for p in payloads if p.isdigit()] == [str(i) for i in range(300)]


def test_broker_restart_mid_stream_and_the_status_history_tells_the_truth(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    statuses = channels(protocol.CHANNEL_STATUS)
    statuses.poll()
    mosquitto.stop()
    down = statuses.wait(
        protocol.CHANNEL_STATUS, lambda m: m["connected"] is False, 15, "a disconnected status"
    )
    assert "lost the connection to 127.0.0.1:" in down["reason"]
    assert down["last_disconnected_at"] >= down["last_connected_at"]
    assert "@" not in down["broker"]
    mosquitto.start()
    up = statuses.wait(protocol.CHANNEL_STATUS, lambda m: m["connected"] is True, 40, "a reconnected status")
    assert up["since"] >= down["since"]
    assert up["last_disconnected_at"] == down["last_disconnected_at"]
    transitions = [m["connected"] for m in statuses.on(protocol.CHANNEL_STATUS)]
    assert transitions[0] is False and transitions[-1] is True
    # connected is said once the subscriptions are acknowledged: a message now gets through
    messages = channels(protocol.CHANNEL_MESSAGES)
    messages.poll()
    publish_all(mosquitto.port, [("after/restart", b"ok")])
    messages.wait(protocol.CHANNEL_MESSAGES, lambda m: m["topic"] == "after/restart", 10)
    heartbeat = wait_for(lambda: _heartbeat(r) if _heartbeat(r)["counters"]["reconnects"] >= 1 else None, 10)
    assert heartbeat["counters"]["reconnects"] == 1
