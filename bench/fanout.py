"""Dashboard fan-out under load, against a bridge-only baseline from the same run (a benchmark, not a test).

Load: --rate msg/s of QoS 0 messages (--payload-bytes, 100 by default) from a paho publisher (its own
process, paced on a time schedule) into a private mosquitto; the real bridge (``python -m bridge``)
forwards them into a private redis-server; ``mqtt-dashboard`` (Gunicorn, 2 gevent workers) relays them
to --clients python-socketio AsyncClients (WebSocket transport only, token auth), spread over
--client-processes processes (4 by default) so that the clients' own CPU is not what is measured.
Every payload starts with its send time (``time.time()``), so each client
measures MQTT-to-client latency on every message of every ``mqtt_messages`` frame.

  clients  - the --clients connections (in --client-processes processes): the figures the target is about
  probes   - one more client per worker, in an otherwise idle process of their own: the same latency
             without this process's CPU queueing (what a browser with its own CPU would see)
  baseline - one plain redis-py subscriber on ``mqtt:messages`` (its own process): what the bridge alone adds

Prints latency p50/p99, frames, messages delivered/skipped, clients dropped, the clients' spread over
the workers (the snapshot's "worker"), each worker's RSS (/proc VmRSS) and the CPU every process used.
Frames are read by scanning their JSON text (one in 50 is also fully decoded and compared);
--full-decode decodes every frame into dicts, which roughly doubles this process's CPU.
Loopback only; bounded; every process it starts is stopped on exit, Ctrl-C and SIGTERM included.

    .venv/bin/python bench/fanout.py [--duration 20] [--clients 200] [--rate 2000] [--full-decode]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from bench.stack.clients import run_client_group, run_probe  # noqa: E402
from bench.stack.load import TOPIC, run_baseline, run_publisher  # noqa: E402
from bench.stack.measure import measure  # noqa: E402
from bench.stack.report import report  # noqa: E402
from bridge.contract import protocol  # noqa: E402
from tests.helpers import DashboardProcess, env_with, start_mosquitto, start_redis, wait_for  # noqa: E402


def start_bridge(workdir: Path, broker_port: int, redis_port: int) -> subprocess.Popen[bytes]:
    env = env_with(
        MQTT_BROKER_HOST="127.0.0.1",
        MQTT_BROKER_PORT=str(broker_port),
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(redis_port),
        MQTT_TOPICS=TOPIC,
        MQTT_CLIENT_ID=f"bench-fanout-bridge-{time.monotonic_ns()}",
        LOG_LEVEL="WARNING",
    )
    with open(workdir / "bridge.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "bridge"], env=env, cwd=REPO, stdout=log, stderr=log)


def raise_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM outside the event loop: the same clean-up as Ctrl-C (inside it, measure() cancels)."""
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument("--clients", type=int, default=200, help="Socket.IO clients (default 200)")
    parser.add_argument("--rate", type=float, default=2000.0, help="MQTT messages per second (default 2000)")
    parser.add_argument("--payload-bytes", type=int, default=100, help="payload size (default 100)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder with every log")
    parser.add_argument(
        "--full-decode",
        action="store_true",
        help="decode every frame into dicts as a browser does (costs this process ~2x the CPU)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=4,
        help="processes the clients are spread over (default 4), so their own CPU is not the limit",
    )
    parser.add_argument(
        "--role", choices=("publisher", "baseline", "probe", "clients"), help=argparse.SUPPRESS
    )
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--broker-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the benchmark's; it stops us
    if args.role == "publisher":
        run_publisher(args.broker_port, args.rate, args.duration, args.payload_bytes)
        return
    if args.role == "baseline":
        run_baseline(args.redis_port)
        return
    if args.role == "probe":
        asyncio.run(run_probe(args.url, os.environ["BENCH_DASHBOARD_TOKEN"], workers=2))
        return
    if args.role == "clients":
        token = os.environ["BENCH_DASHBOARD_TOKEN"]
        asyncio.run(run_client_group(args.url, token, args.count, args.first_index, args.full_decode))
        return

    signal.signal(signal.SIGTERM, raise_interrupt)
    tmp = tempfile.mkdtemp(prefix="bench-fanout-")
    workdir = Path(tmp)
    broker = redis_server = dashboard = None
    bridge: subprocess.Popen[bytes] | None = None
    try:
        broker = start_mosquitto(workdir)
        redis_server = start_redis(workdir)
        args.broker_port, args.redis_port = broker.port, redis_server.port
        bridge = start_bridge(workdir, broker.port, redis_server.port)
        r = redis.Redis(port=redis_server.port)
        wait_for(
            lambda: (s := protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST))) and s["connected"],
            20,
            what="the bridge to report connected",
        )
        dashboard = DashboardProcess(
            workdir, redis_server.port, workers=2, DASHBOARD_TOKEN=secrets.token_urlsafe(24)
        ).start()
        pids = {"bridge": bridge.pid, "mosquitto": broker.proc.pid, "redis": redis_server.proc.pid}  # type: ignore[union-attr]
        print(
            f"running: {args.clients} clients, {args.rate:,.0f} msg/s for {args.duration:g} s "
            f"(mosquitto :{broker.port}, redis :{redis_server.port}, dashboard {dashboard.url})",
            flush=True,
        )
        try:
            result = asyncio.run(asyncio.wait_for(measure(args, dashboard, pids), args.duration + 180))
        finally:
            signal.signal(signal.SIGTERM, raise_interrupt)  # the closed loop reset it to the default
        if bridge.poll() is not None:
            print(f"  WARNING: the bridge exited with {bridge.returncode} during the run")
        report(args, result, workdir)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: stopping every process this benchmark started", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if dashboard is not None:
            dashboard.stop()
        if bridge is not None and bridge.poll() is None:
            bridge.terminate()
            try:
                bridge.wait(10)
            except subprocess.TimeoutExpired:
                bridge.kill()
                bridge.wait(5)
        for proc in (redis_server, broker):
            if proc is not None:
                proc.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
