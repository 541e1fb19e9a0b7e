"""The bridge's memory under a burst of large messages (a benchmark, not a test).

Issue 21.5: 6,000 messages of 256 KB published as fast as a raw MQTT socket can send them (QoS 0,
mosquitto queueing without limit) into a bridge with default settings and a ``redis-cli`` reader
on ``mqtt:messages``. The bridge's RSS is sampled every 100 ms from before the burst until 30 s
after it; the goal is a peak of at most 300 MiB and, 30 s later, within 10 % of the start.

    .venv/bin/python bench/memory.py [--messages 6000] [--payload-bytes 262144] [--after 30]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from bench.latency import _remaining_length  # noqa: E402
from bridge.contract import protocol  # noqa: E402
from tests.helpers import free_port, start_mosquitto, start_redis, wait_for  # noqa: E402

TOPIC = "bench/burst"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def burst(broker_port: int, messages: int, size: int) -> float:
    """Publish ``messages`` of ``size`` bytes back to back; seconds it took."""
    sock = socket.create_connection(("127.0.0.1", broker_port))
    client_id = b"bench-burst"
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
    assert sock.recv(4)[:2] == b"\x20\x02", "no CONNACK"
    topic = len(TOPIC).to_bytes(2, "big") + TOPIC.encode()
    started = time.perf_counter()
    for index in range(messages):
        payload = b"%010d" % index + b"p" * (size - 10)
        sock.sendall(b"\x30" + _remaining_length(len(topic) + size) + topic + payload)
    sock.sendall(b"\xe0\x00")
    sock.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--payload-bytes", type=int, default=256 * 1024)
    parser.add_argument("--after", type=float, default=30.0, help="seconds to watch after the burst")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = start_mosquitto(workdir, extra="max_queued_messages 0\nmax_queued_bytes 0\n")
        redis_server = start_redis(workdir, free_port())
        r = redis.Redis(port=redis_server.port)
        reader = subprocess.Popen(
            ["redis-cli", "-p", str(redis_server.port), "SUBSCRIBE", protocol.CHANNEL_MESSAGES],
            stdout=subprocess.DEVNULL,
        )
        env = dict(
            os.environ,
            MQTT_BROKER_HOST="127.0.0.1",
            MQTT_BROKER_PORT=str(broker.port),
            REDIS_HOST="127.0.0.1",
            REDIS_PORT=str(redis_server.port),
            MQTT_TOPICS=TOPIC,
            LOG_LEVEL="WARNING",
            MQTT_SESSION_EXPIRY="0",
        )
        bridge = subprocess.Popen([sys.executable, "-m", "bridge"], env=env, cwd=REPO)
        samples: list[tuple[float, float]] = []
        done = threading.Event()
        try:
            wait_for(
                lambda: (protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST)) or {}).get("connected"), 30
            )
            time.sleep(1.0)
            start_rss = rss_mib(bridge.pid)
            t0 = time.monotonic()

            def sample() -> None:
                while not done.is_set():
                    samples.append((time.monotonic() - t0, rss_mib(bridge.pid)))
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            took = burst(broker.port, args.messages, args.payload_bytes)

            # until the bridge has taken everything (received = forwarded + dropped), then --after
            def settled() -> bool:
                beat = protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)) or {}
                counters = beat.get("counters", {})
                return counters.get("received", 0) >= args.messages and counters.get("queue_depth", 1) == 0

            wait_for(settled, 120, interval=0.5, what="the bridge to take the burst")
            drained_at = time.monotonic() - t0
            time.sleep(args.after)
            done.set()
            sampler.join()
            counters = (protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)) or {}).get("counters", {})
        finally:
            bridge.terminate()
            bridge.wait(10)
            reader.terminate()
            broker.stop()
            redis_server.stop()
    peak = max(rss for _, rss in samples)
    end = samples[-1][1]
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"\n{args.messages:,} QoS 0 messages of {args.payload_bytes:,} bytes in {took:.1f} s "
        f"({args.messages * args.payload_bytes / took / 1e6:.0f} MB/s offered); bridge defaults"
    )
    print(
        f"  bridge RSS: start {start_rss:.0f} MiB, peak {peak:.0f} MiB, {args.after:.0f} s after the "
        f"burst was taken ({drained_at:.1f} s) {end:.0f} MiB"
    )
    print(
        f"  counters: received {counters.get('received', 0):,}, forwarded {counters.get('forwarded', 0):,}, "
        f"dropped {counters.get('dropped', 0):,}"
    )
    print(
        f"  targets (issue 21.5): peak <= 300 MiB: {'MET' if peak <= 300 else 'NOT MET'}; "
        f"back within 10 % of the start: {'MET' if end <= start_rss * 1.1 else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
