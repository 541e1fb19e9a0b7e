"""Publish -> Redis reader latency and CPU per message at a fixed rate (a benchmark, not a test).

A private mosquitto and redis-server; a publisher (its own process, a raw MQTT 3.1.1 socket, so no
client library thread sits between the clock and the wire) sends QoS 0 messages of 92 bytes at a
fixed rate (2,000/s for 20 s by default), each carrying its send time; a reader (its own process,
redis-py, subscribed to ``mqtt:messages``) takes the difference on arrival. The contender is
``python -m bridge`` with default settings (``bridge``), with ``--linger N`` also with
WRITER_LINGER_MS=N (``bridge-linger``), and with ``--compare-repo PATH`` another checkout's
(``bridge-main``), interleaved over ``--rounds`` rounds; medians of the rounds' figures.

    .venv/bin/python bench/latency.py [--rate 2000] [--seconds 20] [--rounds 3]
    .venv/bin/python bench/latency.py --linger 10 --compare-repo ../main
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from bench.throughput import cpu_seconds  # noqa: E402
from bridge.contract import protocol  # noqa: E402
from tests.helpers import free_port, start_mosquitto, start_redis, wait_for  # noqa: E402

TOPIC = "bench/latency"
SIZE = 92


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publisher(broker_port: int, rate: float, seconds: float) -> None:
    """Send ``rate`` messages a second on a fixed schedule; print how late it ran."""
    sock = socket.create_connection(("127.0.0.1", broker_port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_id = b"bench-latency-publisher"
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
    assert sock.recv(4)[:2] == b"\x20\x02", "no CONNACK"
    topic = len(TOPIC).to_bytes(2, "big") + TOPIC.encode()
    count = int(rate * seconds)
    started = time.perf_counter()
    late = []
    for index in range(count):
        due = started + index / rate
        while (wait := due - time.perf_counter()) > 0.0005:
            time.sleep(wait - 0.0004)
        while time.perf_counter() < due:
            pass
        late.append(time.perf_counter() - due)
        payload = b"%019d" % time.time_ns()
        payload += b"x" * (SIZE - len(payload))
        sock.sendall(b"\x30" + _remaining_length(len(topic) + SIZE) + topic + payload)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    late.sort()
    print(json.dumps({"sent": count, "late_p99": late[int(len(late) * 0.99)], "late_max": late[-1]}))


def reader(redis_port: int, expected: int, ready_file: str, out_file: str) -> None:
    """Record each message's latency (ns) until ``expected`` came or 10 s pass without one."""
    r = redis.Redis(port=redis_port)
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(protocol.CHANNEL_MESSAGES)
    Path(ready_file).write_text("ready")
    latencies: list[int] = []
    quiet_since = time.monotonic()
    while len(latencies) < expected and time.monotonic() - quiet_since < 10:
        message = pubsub.get_message(timeout=0.5)
        if message is None:
            continue
        now = time.time_ns()
        quiet_since = time.monotonic()
        body = json.loads(message["data"])
        if body.get("topic") == TOPIC:
            latencies.append(now - int(body["payload"][:19]))
    Path(out_file).write_text(json.dumps(latencies))


def run_round(
    name: str,
    repo: Path,
    broker_port: int,
    redis_port: int,
    rate: float,
    seconds: float,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
) -> dict[str, float]:
    r = redis.Redis(port=redis_port)
    r.flushall()
    env = dict(
        os.environ,
        MQTT_BROKER_HOST="127.0.0.1",
        MQTT_BROKER_PORT=str(broker_port),
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(redis_port),
        MQTT_TOPICS=TOPIC,
        LOG_LEVEL="WARNING",
        MQTT_CLIENT_ID=f"bench-latency-{time.monotonic_ns()}",
        MQTT_SESSION_EXPIRY="0",
        PYTHONPATH=str(repo),
        **(extra_env or {}),
    )
    log = open(workdir / "bridge.log", "ab")  # noqa: SIM115 (kept open for the child's life)
    bridge = subprocess.Popen([sys.executable, "-m", "bridge"], env=env, cwd=repo, stdout=log, stderr=log)
    expected = int(rate * seconds)
    ready, out = workdir / f"ready-{time.monotonic_ns()}", workdir / f"latencies-{time.monotonic_ns()}"
    me = [sys.executable, __file__, "--redis-port", str(redis_port), "--broker-port", str(broker_port)]
    listening = subprocess.Popen(
        [*me, "--role", "reader", "--expected", str(expected), "--ready-file", str(ready), "--out", str(out)]
    )
    try:
        wait_for(
            lambda: (protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST)) or {}).get("connected"), 30
        )
        wait_for(ready.exists, 20, what="the reader")
        cpu_before = cpu_seconds(bridge.pid)
        sent = subprocess.run(
            [*me, "--role", "publisher", "--rate", str(rate), "--seconds", str(seconds)],
            capture_output=True,
            text=True,
            check=True,
        )
        listening.wait(seconds + 60)
        cpu = cpu_seconds(bridge.pid) - cpu_before
    finally:
        bridge.terminate()
        bridge.wait(10)
        log.close()
    latencies = sorted(json.loads(out.read_text()))
    schedule = json.loads(sent.stdout)

    def at(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))] / 1e6

    return {
        "received": len(latencies),
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": latencies[-1] / 1e6,
        "cpu": cpu,
        "late_p99": schedule["late_p99"] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--compare-repo", type=Path, help="another checkout to run as bridge-main (say, main)"
    )
    parser.add_argument(
        "--linger", type=int, default=0, help="also run bridge-linger: the bridge with WRITER_LINGER_MS=N"
    )
    parser.add_argument("--role", choices=("publisher", "reader"))
    parser.add_argument("--broker-port", type=int)
    parser.add_argument("--redis-port", type=int)
    parser.add_argument("--expected", type=int)
    parser.add_argument("--ready-file")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.role == "publisher":
        publisher(args.broker_port, args.rate, args.seconds)
        return
    if args.role == "reader":
        reader(args.redis_port, args.expected, args.ready_file, args.out)
        return

    contenders: dict[str, tuple[Path, dict[str, str]]] = {"bridge": (REPO, {})}
    if args.linger:
        contenders["bridge-linger"] = (REPO, {"WRITER_LINGER_MS": str(args.linger)})
    if args.compare_repo:
        contenders["bridge-main"] = (args.compare_repo.resolve(), {})
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = start_mosquitto(workdir, extra="max_queued_messages 0\nmax_queued_bytes 0\n")
        redis_server = start_redis(workdir, free_port())
        try:
            names = list(contenders)
            for round_ in range(args.rounds):
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                for name in order:
                    repo, extra_env = contenders[name]
                    outcome = run_round(
                        name,
                        repo,
                        broker.port,
                        redis_server.port,
                        args.rate,
                        args.seconds,
                        workdir,
                        extra_env,
                    )
                    results[name].append(outcome)
                    print(
                        f"round {round_ + 1} {name}: p50 {outcome['p50']:.3f} ms, "
                        f"p99 {outcome['p99']:.3f} ms, CPU {outcome['cpu']:.2f} s, "
                        f"got {outcome['received']:,}",
                        flush=True,
                    )
        finally:
            broker.stop()
            redis_server.stop()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    count = int(args.rate * args.seconds)
    print(
        f"\n{count:,} QoS 0 messages of {SIZE} bytes at {args.rate:,.0f}/s, MQTT publish -> redis-py "
        f"reader on {protocol.CHANNEL_MESSAGES}; medians of {args.rounds} rounds"
    )
    print(
        f"  {'contender':12s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} {'p999 ms':>8s} {'max ms':>8s}"
        f"  CPU s per {count:,}  received (worst)  publisher late p99"
    )
    for name, runs in results.items():
        med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
        worst = min(x["received"] for x in runs)
        print(
            f"  {name:12s} {med['p50']:8.3f} {med['p90']:8.3f} {med['p99']:8.3f} {med['p999']:8.3f}"
            f" {med['max']:8.1f}  {med['cpu']:14.2f}  {worst:>16,}  {med['late_p99']:.3f} ms"
        )
    print("  targets (issue 23): p50 <= 0.5 ms, p99 <= 1 ms; CPU <= bridge-main's")


if __name__ == "__main__":
    main()
