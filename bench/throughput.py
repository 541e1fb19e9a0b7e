"""Bridge throughput against two baselines measured in the same run (a benchmark, not a test).

Load: N QoS 0 messages of ~100 bytes from ``mosquitto_pub -l`` into a private mosquitto.
  (a) bare    - a paho subscriber that only counts: the Python ingest ceiling
  (b) naive   - a paho subscriber doing one synchronous Redis PUBLISH per message in on_message
  (c) bridge  - ``python -m bridge``, counted on Redis (the history stream's length)
Prints messages/s (median of --repeat runs), losses, and the ratios c/a and c/b.

    .venv/bin/python bench/throughput.py [--messages 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
import redis  # noqa: E402

from bridge import protocol  # noqa: E402
from tests.helpers import free_port, start_mosquitto, start_redis, wait_for  # noqa: E402

TOPIC = "bench/line"
PAYLOAD = "x" * 100


# --- the baselines, each run in its own process ---------------------------------------------
def subscriber(role: str, broker_port: int, redis_port: int, expected: int, ready_file: str) -> None:
    """Count messages (and for 'naive', PUBLISH each to Redis); print JSON timings."""
    r = redis.Redis(port=redis_port) if role == "naive" else None
    state = {"count": 0, "first": 0.0, "last": 0.0}

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != TOPIC:
            return
        if r is not None:  # the usual design: build a dict, json.dumps it, PUBLISH and wait
            body = {
                "type": protocol.TYPE_MESSAGE,
                "topic": msg.topic,
                "payload": msg.payload.decode("utf-8", "replace"),
                "qos": msg.qos,
                "retain": msg.retain,
                "timestamp": time.time(),
            }
            r.publish(protocol.CHANNEL_MESSAGES, json.dumps(body))
        now = time.perf_counter()
        if state["count"] == 0:
            state["first"] = now
        state["count"] += 1
        state["last"] = now

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{role}", protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *a: Path(ready_file).write_text("ready")
    client.on_connect = lambda c, *a: c.subscribe(TOPIC, 0)
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    deadline = time.monotonic() + 300
    idle_since = time.monotonic()
    seen = 0
    while state["count"] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        if state["count"] != seen:
            seen, idle_since = state["count"], time.monotonic()
        elif seen and time.monotonic() - idle_since > 5:
            break  # the rest was lost
    client.disconnect()
    client.loop_stop()
    print(json.dumps(state))


PUBLISHER_RATES: list[float] = []


def publish_load(broker_port: int, messages: int) -> None:
    """Send the load; its own rate is kept, to show whether the load generator was the limit."""
    lines = (PAYLOAD + "\n") * messages
    started = time.perf_counter()
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker_port), "-t", TOPIC, "-q", "0", "-l"],
        input=lines.encode(),
        check=True,
    )
    PUBLISHER_RATES.append(messages / (time.perf_counter() - started))


def run_baseline(
    role: str, broker_port: int, redis_port: int, messages: int, workdir: Path
) -> dict[str, float]:
    ready = workdir / f"ready-{role}-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--role",
            role,
            "--broker-port",
            str(broker_port),
            "--redis-port",
            str(redis_port),
            "--messages",
            str(messages),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_for(ready.exists, 20, what=f"{role} subscriber")
    publish_load(broker_port, messages)
    out, _ = proc.communicate(timeout=400)
    state = json.loads(out)
    span = max(state["last"] - state["first"], 1e-9)
    return {"count": state["count"], "rate": state["count"] / span}


def run_bridge(broker_port: int, redis_port: int, messages: int, workdir: Path) -> dict[str, float]:
    r = redis.Redis(port=redis_port)
    r.flushall()
    env = dict(os.environ)
    env.update(
        MQTT_BROKER_HOST="127.0.0.1",
        MQTT_BROKER_PORT=str(broker_port),
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(redis_port),
        MQTT_TOPICS=TOPIC,
        HISTORY_MAXLEN=str(messages * 2),
        LOG_LEVEL="WARNING",
        MQTT_CLIENT_ID=f"bench-bridge-{time.monotonic_ns()}",
        QUEUE_MAXSIZE="1000000",
    )
    log = open(workdir / "bridge.log", "ab")  # noqa: SIM115 (kept open for the child's life)
    proc = subprocess.Popen([sys.executable, "-m", "bridge"], env=env, cwd=REPO, stdout=log, stderr=log)
    try:
        wait_for(
            lambda: (s := protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST))) and s["connected"],
            20,
            what="bridge",
        )
        publish_load(broker_port, messages)
        first = last = 0.0
        seen, idle_since = 0, time.monotonic()
        while seen < messages:
            count = r.xlen(protocol.KEY_HISTORY)
            now = time.perf_counter()
            if count and not first:
                first = now
            if count != seen:
                seen, last, idle_since = count, now, time.monotonic()
            elif time.monotonic() - idle_since > 5:
                break
            time.sleep(0.002)
        heartbeat = protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)) or {}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    return {
        "count": seen,
        "rate": seen / max(last - first, 1e-9),
        "dropped": heartbeat.get("counters", {}).get("dropped", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="bare,naive,bridge", help="comma-separated subset to measure")
    parser.add_argument("--role", choices=("bare", "naive"))
    parser.add_argument("--broker-port", type=int)
    parser.add_argument("--redis-port", type=int)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    if args.role:
        subscriber(args.role, args.broker_port, args.redis_port, args.messages, args.ready_file)
        return

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = start_mosquitto(workdir, extra="max_queued_messages 0\nmax_queued_bytes 0\n")
        redis_server = start_redis(workdir, free_port())
        try:
            only = set(args.only.split(","))
            results: dict[str, list[dict[str, float]]] = {
                name: [] for name in ("bare", "naive", "bridge") if name in only
            }
            for round_ in range(args.repeat):
                for role in results:
                    if role == "bridge":
                        outcome = run_bridge(broker.port, redis_server.port, args.messages, workdir)
                    else:
                        outcome = run_baseline(role, broker.port, redis_server.port, args.messages, workdir)
                    results[role].append(outcome)
                rates = ", ".join(f"{k} {v[-1]['rate']:,.0f}/s" for k, v in results.items())
                print(f"round {round_ + 1}: {rates}", flush=True)
        finally:
            broker.stop()
            redis_server.stop()

    median = {k: statistics.median(x["rate"] for x in v) for k, v in results.items()}
    lost = {k: args.messages - min(x["count"] for x in v) for k, v in results.items()}
    if len(results) < 3:
        print({k: f"{v:,.0f}/s" for k, v in median.items()})
        return
    print(f"\n{args.messages:,} QoS 0 messages of {len(PAYLOAD)} bytes, median of {args.repeat} runs")
    for name, label in (
        ("bare", "(a) bare paho subscriber"),
        ("naive", "(b) naive: PUBLISH per message"),
        ("bridge", "(c) this bridge"),
    ):
        print(f"  {label:34s} {median[name]:>10,.0f} msg/s   lost (worst run): {lost[name]}")
    load = statistics.median(PUBLISHER_RATES)
    verdict = "above every rate measured: not the limit" if load > max(median.values()) else "THE LIMIT"
    print(f"  {'load: mosquitto_pub -l':34s} {load:>10,.0f} msg/s   {verdict}")
    print(f"  bridge / bare  = {median['bridge'] / median['bare']:.2f} x   (target >= 0.8)")
    print(f"  bridge / naive = {median['bridge'] / median['naive']:.2f} x   (target >= 5)")


if __name__ == "__main__":
    main()
