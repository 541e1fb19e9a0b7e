"""The load and the baseline: a paced MQTT publisher, and a plain Redis subscriber on mqtt:messages."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import paho.mqtt.client as mqtt
import redis

from bench.stack.histogram import Histogram, sent_at
from bridge.contract import protocol

TOPIC = "bench/fanout"


def run_publisher(broker_port: int, rate: float, duration: float, payload_bytes: int) -> None:
    """Publish rate*duration messages, message k due at start + k/rate; print a JSON summary."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-fanout-publisher")
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", broker_port, keepalive=30)
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit("publisher: no CONNACK from mosquitto in 10 s")
    total = int(rate * duration)
    pad = "x" * payload_bytes
    started_wall = time.time()
    start = time.monotonic()
    sent = late = 0
    max_lag = 0.0
    info = None
    while sent < total:
        now = time.monotonic()
        due = min(total, int((now - start) * rate) + 1)
        while sent < due:  # catch up in a burst when the schedule got ahead of us
            lag = time.monotonic() - (start + sent / rate)
            max_lag = max(max_lag, lag)
            late += lag > 0.005
            head = f"{time.time():.6f} {sent} "
            info = client.publish(TOPIC, (head + pad)[: max(payload_bytes, len(head))], qos=0)
            sent += 1
        pause = start + sent / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.monotonic() - start
    if info is not None:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    print(
        json.dumps(
            {
                "sent": sent,
                "elapsed": elapsed,
                "max_lag": max_lag,
                "late": late,
                "started": started_wall,
                "pid": os.getpid(),
            }
        ),
        flush=True,
    )


def run_baseline(redis_port: int) -> None:
    """Subscribe to mqtt:messages, print 'ready', measure until SIGTERM, then print a histogram."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pubsub = redis.Redis(port=redis_port).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(protocol.CHANNEL_MESSAGES)
    while pubsub.get_message(timeout=0.1) is not None or not pubsub.subscribed:
        pass
    print("ready", flush=True)
    hist = Histogram()
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:  # bounded: ends with the benchmark
        message = pubsub.get_message(timeout=0.1)
        if message is None:
            continue
        now = time.time()
        body = json.loads(message["data"])
        if body.get("topic") == TOPIC:
            hist.add_all((now - sent_at(body["payload"]),))
    pubsub.close()
    print(json.dumps(hist.to_json()), flush=True)


# --- /proc readings ---------------------------------------------------------------------------
