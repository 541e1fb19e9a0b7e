"""Delivery guarantees against real servers: nothing doubled when a reply is lost, counters that
add up, and at-least-once for QoS 1 across a kill -9 of the bridge."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge import protocol
from tests.helpers import BridgeProcess, Process, wait_for
from tests.integration.mqtt_client import publish_all
from tests.integration.redis_proxy import ReplyDroppingProxy

pytestmark = pytest.mark.integration


def _history(r: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(fields[b"data"]) for _, fields in r.xrange(protocol.KEY_HISTORY)]


def _counters(r: redis.Redis) -> dict[str, int]:
    heartbeat = protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)) or {}
    return heartbeat.get("counters") or {}


def test_a_lost_reply_does_not_write_a_split_batch_twice(
    workdir: Path, mosquitto: Process, redis_server: Process, r: redis.Redis
) -> None:
    proxy = ReplyDroppingProxy(redis_server.port)
    bridge = BridgeProcess(workdir, mosquitto.port, proxy.port, MQTT_TOPICS="big/#")
    try:
        bridge.start()
        # A first message loads the script, so the reply lost below is that of a call that ran.
        publish_all(mosquitto.port, [("big/warm-up", b"w")])
        wait_for(lambda: _counters(r).get("forwarded") == 1, 15, what="the warm-up message")
        proxy.drop_reply_after(1_000_000)  # only the writer's calls are that large
        publish_all(mosquitto.port, [("big/blob", (str(i) * 1_000_000).encode()) for i in range(6)])
        wait_for(proxy.dropped.is_set, 20, what="the proxy to lose a reply")
        wait_for(lambda: _counters(r).get("forwarded") == 7, 30, what="six more messages forwarded")
        entries = [m for m in _history(r) if m["topic"] == "big/blob"]
        assert sorted(m["payload"][0] for m in entries) == list("012345")  # each exactly once
        assert "Redis unreachable" in bridge.output()  # the lost reply was noticed and retried
        counters = _counters(r)
        assert counters["dropped"] == 0
        assert counters["received"] == (
            counters["forwarded"] + counters["dropped"] + counters["queue_depth"] + counters["system"]
        )
    finally:
        bridge.kill()
        proxy.close()


def test_counters_add_up_including_sys_messages(bridge: Any, mosquitto: Process, r: redis.Redis) -> None:
    publish_all(mosquitto.port, [("count/me", str(i).encode()) for i in range(200)])
    wait_for(lambda: _counters(r).get("system", 0) > 0, 15, what="some $SYS messages counted")

    def balanced() -> dict[str, int] | None:
        c = _counters(r)
        total = c["forwarded"] + c["dropped"] + c["queue_depth"] + c["system"]
        return c if c["forwarded"] >= 200 and c["received"] == total else None

    counters = wait_for(balanced, 20, what="received = forwarded + dropped + queued + system")
    assert counters["dropped"] == 0
    assert Counter(m["topic"] for m in _history(r))["count/me"] == 200
