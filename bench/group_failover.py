"""A bridge group that meets load 1 s after forming, against the same group settled (a benchmark,
not a test; issue 22, point 4).

The situation: two bridge-group members (BRIDGE_GROUP, MQTT 5, defaults otherwise), each held to
40 % of a core as if on its own small host, a private mosquitto and redis-server, and a live
``redis-cli SUBSCRIBE mqtt:messages`` reader, as the dashboard always is. The broker holds retained
messages under the group's filter, so the new leader's retained sweep has work to do. Load: N QoS 0
messages of 80 bytes from ``mosquitto_pub -l``.

Contenders, interleaved in every round (their order alternates), medians over the rounds:
  fresh     the load starts 1 s after the group formed (both members connected, a leader elected:
            the moment a leader change also creates)
  settled   the same, 10 s after forming
Each run also checks that every retained message is in mqtt:history exactly once.

Needs: root, and the cgroup v1 cpu controller mounted at /sys/fs/cgroup/cpu (each member runs in
a cgroup of its own with cpu.cfs_quota_us = 40 % of cpu.cfs_period_us). Without them the script
says so in one line and exits 0 without measuring. Every server listens on 127.0.0.1 only.

    .venv/bin/python bench/group_failover.py [--messages 100000] [--rounds 3] [--quota 0.4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
import redis  # noqa: E402

from bench.throughput import PUBLISHER_RATES, Reader, publish_load  # noqa: E402
from bridge.config import VARIABLES  # noqa: E402
from bridge.contract import protocol  # noqa: E402
from tests.helpers import free_port, start_mosquitto, start_redis, wait_for  # noqa: E402
from tests.integration.mqtt_client import publish_all  # noqa: E402

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
FILTER = "bench/#"
RETAINED = 200  # retained messages under the group's filter: the sweep forwards each once
MEMBERS = 2
SETTLE = 10.0  # seconds after forming for "settled" (the old sweep lasted 5)
IDLE_END = 5.0  # seconds without progress: the rest was lost
STATUS_TOPIC = next(v.default for v in VARIABLES if v.name == "MQTT_STATUS_TOPIC")


def cgroups_missing() -> str | None:
    """Why members cannot be held to a CPU quota here, or None."""
    if os.geteuid() != 0:
        return "not root: writing cgroups needs root"
    if not (CGROUP_CPU / "cpu.cfs_quota_us").exists():
        return f"no cgroup v1 cpu controller at {CGROUP_CPU}"
    return None


@contextlib.contextmanager
def cpu_cgroup(name: str, quota: float) -> Iterator[Path]:
    """A cgroup of its own holding its processes to ``quota`` of one core; removed afterwards."""
    path = CGROUP_CPU / name
    path.mkdir()
    try:
        period = int((path / "cpu.cfs_period_us").read_text())
        (path / "cpu.cfs_quota_us").write_text(str(int(period * quota)))
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.rmdir()


def start_member(env: dict[str, str], cgroup: Path, log: Path) -> subprocess.Popen[bytes]:
    procs = cgroup / "cgroup.procs"

    def enter_cgroup() -> None:  # in the child, before exec: every thread it starts is held too
        procs.write_text(str(os.getpid()))

    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=out,
            preexec_fn=enter_cgroup,  # this parent runs no threads of its own then
        )


class Formation:
    """When the group has formed: a leader elected and every member connected to the broker. Each
    member says "online" on its own retained status topic once its subscriptions are acknowledged
    (the members' records in Redis follow only with their next heartbeat, up to 5 s later)."""

    def __init__(self, broker_port: int, members: list[str]):
        self.members = set(members)
        self.online: set[str] = set()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker_port)
        self.client.subscribe(f"{STATUS_TOPIC}/+", 1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        member = msg.topic.rsplit("/", 1)[-1]
        if member in self.members and msg.payload == b"online":
            self.online.add(member)

    def formed(self, r: redis.Redis) -> bool:
        return self.online == self.members and r.exists(protocol.KEY_LEADER) == 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_group(
    name: str, broker_port: int, redis_port: int, messages: int, quota: float, workdir: Path
) -> dict[str, float]:
    r = redis.Redis(port=redis_port)
    r.flushall()
    reader = Reader(redis_port, workdir)
    stamp = time.monotonic_ns()
    env = dict(os.environ)
    env.update(
        MQTT_BROKER_HOST="127.0.0.1",
        MQTT_BROKER_PORT=str(broker_port),
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(redis_port),
        MQTT_TOPICS=FILTER,
        BRIDGE_GROUP="bench",
        HISTORY_MAXLEN=str((messages + RETAINED) * 2),  # enough to count every message
        HISTORY_MAX_BYTES="0",
        LOG_LEVEL="WARNING",
        MQTT_SESSION_EXPIRY="0",  # a fresh client each round: no session to leave behind
    )
    wait = 1.0 if name == "fresh" else SETTLE
    ids = [f"bench-{stamp}-{n}" for n in range(MEMBERS)]
    formation = Formation(broker_port, ids)
    with contextlib.ExitStack() as stack:
        stack.callback(formation.close)
        procs = []
        for n, client_id in enumerate(ids):
            cgroup = stack.enter_context(cpu_cgroup(f"mqtt-bench-{os.getpid()}-{stamp}-{n}", quota))
            procs.append(start_member({**env, "MQTT_CLIENT_ID": client_id}, cgroup, workdir / "members.log"))
        try:
            wait_for(lambda: formation.formed(r), 30, interval=0.01, what="the group to form")
            time.sleep(wait)
            before = r.xlen(protocol.KEY_HISTORY)  # the retained messages the sweep forwarded so far
            publish_load(broker_port, messages)
            rate, seen = _drain_rate(r, before + messages)
            retained = _retained_copies(r)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(10)
    read = reader.consumed()
    return {"rate": rate, "count": seen - before, "retained_ok": float(retained == RETAINED), "read": read}


def _drain_rate(r: redis.Redis, expected: int) -> tuple[float, int]:
    """Forwarding rate while the history grows to ``expected`` (or stops growing)."""
    first = last = 0.0
    seen = r.xlen(protocol.KEY_HISTORY)
    at_first, idle_since = seen, time.monotonic()
    while seen < expected:
        count = r.xlen(protocol.KEY_HISTORY)
        now = time.perf_counter()
        if count != seen:
            if not first:
                first, at_first = now, count  # the rate counts what came after this first sight
            seen, last, idle_since = count, now, time.monotonic()
        elif time.monotonic() - idle_since > IDLE_END:
            break
        time.sleep(0.002)
    return (seen - at_first) / max(last - first, 1e-9), seen


def _retained_copies(r: redis.Redis) -> int:
    """Retained messages in the history; each must be there once (RETAINED in all)."""
    copies = 0
    for _, fields in r.xrange(protocol.KEY_HISTORY, count=RETAINED * 4):
        if b'"topic":"bench/retained/' in fields[protocol.HISTORY_FIELD.encode()]:
            copies += 1
    return copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quota", type=float, default=0.4, help="each member's share of one core")
    args = parser.parse_args()
    missing = cgroups_missing()
    if missing:
        print(f"bench/group_failover.py: skipped, {missing}; nothing was measured")
        return
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results: dict[str, list[dict[str, float]]] = {"fresh": [], "settled": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = start_mosquitto(workdir, extra="max_queued_messages 0\nmax_queued_bytes 0\n")
        redis_server = start_redis(workdir, free_port())
        try:
            retained = [(f"bench/retained/{i}", f"kept {i}".encode()) for i in range(RETAINED)]
            publish_all(broker.port, retained, retain=True)
            for round_ in range(args.rounds):
                order = ["fresh", "settled"] if round_ % 2 == 0 else ["settled", "fresh"]
                for name in order:
                    outcome = run_group(
                        name, broker.port, redis_server.port, args.messages, args.quota, workdir
                    )
                    results[name].append(outcome)
                line = ", ".join(f"{k} {v[-1]['rate']:,.0f}/s" for k, v in results.items())
                print(f"round {round_ + 1}: {line}", flush=True)
        finally:
            broker.stop()
            redis_server.stop()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report(results, args)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    median = {k: statistics.median(x["rate"] for x in v) for k, v in results.items()}
    print(
        f"\n{args.messages:,} QoS 0 messages of 80 bytes to a group of {MEMBERS} members, each held to "
        f"{args.quota:.0%} of a core (cgroup v1 cpu.cfs_quota_us), a redis-cli reader on "
        f"{protocol.CHANNEL_MESSAGES}, {RETAINED} retained messages under {FILTER}, {args.rounds} rounds"
    )
    print(
        f"  {'contender':10s} {'median msg/s':>13s}  {'range':>17s}  lost (worst)  retained once, every round"
    )
    for name, runs in results.items():
        rates = [x["rate"] for x in runs]
        lost = args.messages - min(x["count"] for x in runs)
        once = all(x["retained_ok"] for x in runs)
        spread = f"{min(rates):>8,.0f}-{max(rates):<8,.0f}"
        print(f"  {name:10s} {median[name]:>13,.0f}  {spread}  {lost:>12,}  {once}")
    load = statistics.median(PUBLISHER_RATES)
    verdict = "above every rate measured: not the limit" if load > max(median.values()) else "THE LIMIT"
    print(f"  {'load: mosquitto_pub -l':24s} {load:>10,.0f} msg/s  {verdict}")
    print(f"  fresh / settled  {median['fresh'] / median['settled']:5.2f} x  (target >= 0.8)")


if __name__ == "__main__":
    main()
