"""Bridge ingest throughput against same-kind baselines, interleaved in one run (a benchmark, not a test).

The situation users have: a private mosquitto, a private redis-server, and a live reader on
``mqtt:messages`` in its own process (``redis-cli SUBSCRIBE``, C, consuming every message), as the
dashboard always is. Load: N messages of 92 bytes (``--payload-bytes``) at QoS 0 (``--qos``) from
``mosquitto_pub -l``. Each contender's CPU time (its own process, user + system) from the start
of the load to its last message is printed per 100,000 messages.

Contenders, each in its own process, run one after the other in every round (interleaved, so the
machine's noise hits them alike), medians over the rounds:
  bare-5, bare-3.1.1   a stock paho subscriber of that MQTT version, ``loop_forever``, only counting:
                       the ceiling of a single Python process on that version
  naive                the seed design users would write: paho's default protocol (3.1.1),
                       ``loop_forever``, one synchronous Redis PUBLISH of a json.dumps'ed dict per message
  bridge-5, bridge-3.1.1  ``python -m bridge`` with default settings but MQTT_PROTOCOL, counted on Redis
                       (the history stream's length)
  group-1, group-2     a bridge group (BRIDGE_GROUP, MQTT 5, defaults otherwise) of one or two member
                       processes on ``$share/bench/…``; every payload is numbered, and the run checks
                       that each number is in mqtt:history exactly once
  mq-bridge            mq-bridge 1.2.0 (PyPI, Rust core; bench/peers.py installs it in a venv of its
                       own), MQTT 5 -> Redis Streams with its defaults: one XADD of the raw payload
                       per message, no topic and no pub/sub (so less work than the bridge's contract);
                       counted on its stream
  bridge-main          with --compare-repo PATH: ``python -m bridge`` of another checkout (say, main)
  bridge-5-qos1        bridge-5 with the load published at QoS 1 (so delivered at QoS 1 and
                       acknowledged by the bridge after each Redis write), whatever --qos says

    .venv/bin/python bench/throughput.py [--messages 100000] [--rounds 5] [--only bare-5,bridge-5]
    .venv/bin/python bench/throughput.py --only bridge-5,mq-bridge,bare-5 --rounds 5   # issue 23
    .venv/bin/python bench/throughput.py --only bridge-5,group-1,group-2   # scaling out
    .venv/bin/python bench/throughput.py --only bridge-5,bare-5 --payload-bytes 16384 --messages 20000
    .venv/bin/python bench/throughput.py --backlog ...   # capacity: drain a backlog the broker held
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
import redis  # noqa: E402

from bench import peers  # noqa: E402
from bridge.config import VARIABLES  # noqa: E402
from bridge.contract import protocol  # noqa: E402
from tests.helpers import free_port, start_mosquitto, start_redis, wait_for  # noqa: E402

TOPIC = "bench/line"
CONTENDERS = (
    "bare-5",
    "bare-3.1.1",
    "naive",
    "bridge-5",
    "bridge-3.1.1",
    "group-1",
    "group-2",
    "mq-bridge",
    "bridge-main",
    "bridge-5-qos1",
)
DEFAULT_PROTOCOL = next(v.default for v in VARIABLES if v.name == "MQTT_PROTOCOL")
IDLE_END = 5.0  # seconds without progress: the rest was lost
MQ_BRIDGE_STREAM = "bench:mq-bridge"


class Load:
    """What every contender gets: N messages of ``size`` bytes at ``qos``."""

    size = 92
    qos = 0
    compare_repo: Path | None = None
    mq_bridge_python: Path | None = None
    backlog = False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the baselines, each run in its own process ---------------------------------------------
def subscriber(role: str, broker_port: int, redis_port: int, expected: int, ready_file: str) -> None:
    """Count messages (and for 'naive', PUBLISH each to Redis); print JSON timings."""
    r = redis.Redis(port=redis_port) if role == "naive" else None
    state = {"count": 0, "first": 0.0, "last": 0.0, "cpu": 0.0}
    version = mqtt.MQTTv5 if role == "bare-5" else mqtt.MQTTv311  # naive: paho's default, 3.1.1

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
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
        if state["count"] >= expected:
            client.disconnect()

    def on_idle_check(client: mqtt.Client) -> None:
        if state["count"] and time.perf_counter() - state["last"] > IDLE_END:
            client.disconnect()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{role}", protocol=version)
    client.on_message = on_message
    client.on_subscribe = lambda *a: Path(ready_file).write_text("ready")
    client.on_connect = lambda c, *a: c.subscribe(TOPIC, Load.qos)
    client.connect("127.0.0.1", broker_port)
    deadline = time.monotonic() + 300
    # loop_forever, as such a subscriber runs; a 1 s timer thread only ends it when traffic stops.
    stop = {"done": False}

    def watchdog() -> None:
        while not stop["done"] and time.monotonic() < deadline:
            time.sleep(1.0)
            on_idle_check(client)
        client.disconnect()

    threading.Thread(target=watchdog, daemon=True).start()
    client.loop_forever()
    stop["done"] = True
    state["cpu"] = cpu_seconds(os.getpid())
    print(json.dumps(state))


class Reader:
    """``redis-cli SUBSCRIBE mqtt:messages`` in its own process, every message to a file."""

    def __init__(self, redis_port: int, workdir: Path):
        self.out = workdir / f"reader-{time.monotonic_ns()}.txt"
        self.file = open(self.out, "wb")  # noqa: SIM115 (kept open for the child's life)
        self.proc = subprocess.Popen(
            ["redis-cli", "-p", str(redis_port), "SUBSCRIBE", protocol.CHANNEL_MESSAGES],
            stdout=self.file,
            stderr=subprocess.DEVNULL,
        )
        r = redis.Redis(port=redis_port)
        wait_for(
            lambda: dict(r.pubsub_numsub(protocol.CHANNEL_MESSAGES)).get(protocol.CHANNEL_MESSAGES.encode()),
            10,
            what="the reader",
        )
        self.redis = r

    def consumed(self) -> int:
        """Messages the reader has received, once Redis has nothing left to send it."""
        wait_for(lambda: self._pending() == 0, 30, what="the reader to catch up")
        self.proc.terminate()
        self.proc.wait(5)
        self.file.close()
        with open(self.out, "rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        self.out.unlink()
        return max(0, (lines - 3) // 3)  # raw mode: 3 lines per message, 3 for the subscribe reply

    def _pending(self) -> int:
        return sum(
            int(c.get("omem", 0)) + int(c.get("obl", 0))
            for c in self.redis.client_list()
            if c.get("sub") != "0"
        )


PUBLISHER_RATES: list[float] = []


def publish_load(broker_port: int, messages: int, contenders: list[int]) -> None:
    """Send the load; its own rate is kept, to show whether the load generator was the limit.
    With --backlog the contender's processes are stopped meanwhile (SIGSTOP), so the broker holds
    the whole load and the contender then drains it at its own pace (SIGCONT)."""
    if Load.backlog:
        for pid in contenders:
            os.kill(pid, signal.SIGSTOP)
    try:
        _publish(broker_port, messages)
    finally:
        if Load.backlog:
            time.sleep(0.5)  # the broker has queued the last ones
            for pid in contenders:
                os.kill(pid, signal.SIGCONT)


def _publish(broker_port: int, messages: int) -> None:
    # Numbered payloads of the same size, so a group run can check each one arrived exactly once.
    filler = "x" * max(0, Load.size - 10)
    started = time.perf_counter()
    if Load.qos:
        # mosquitto_pub -l exits at the end of its input with QoS 1 messages still in its queue
        # (measured: 34,467 of 100,000 sent, whichever bridge listened), so QoS 1 goes out through
        # a plain socket that waits for every PUBACK.
        _publish_qos1(broker_port, [f"{i:010d}{filler}".encode() for i in range(messages)])
    else:
        lines = "".join(f"{i:010d}{filler}\n" for i in range(messages))
        subprocess.run(
            ["mosquitto_pub", "-p", str(broker_port), "-t", TOPIC, "-q", "0", "-l"],
            input=lines.encode(),
            check=True,
        )
    PUBLISHER_RATES.append(messages / (time.perf_counter() - started))


def _publish_qos1(broker_port: int, payloads: list[bytes]) -> None:
    """MQTT 3.1.1 QoS 1 PUBLISH packets, sent back to back; returns once each is acknowledged."""
    sock = socket.create_connection(("127.0.0.1", broker_port))
    client_id = b"bench-publisher-qos1"
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    sock.sendall(bytes((0x10, len(body))) + body)
    assert sock.recv(4)[:2] == b"\x20\x02", "no CONNACK"
    topic = len(TOPIC).to_bytes(2, "big") + TOPIC.encode()
    acked = threading.Event()

    def read_acks() -> None:
        waiting = len(payloads) * 4  # PUBACKs are 4 bytes each
        while waiting > 0:
            data = sock.recv(65536)
            if not data:
                return
            waiting -= len(data)
        acked.set()

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    chunk = bytearray()
    for index, payload in enumerate(payloads):
        mid = index % 65535 + 1
        size = len(topic) + 2 + len(payload)
        length = bytearray()
        while True:
            byte, size = size % 128, size // 128
            length.append(byte | (0x80 if size else 0))
            if not size:
                break
        chunk += b"\x32" + length + topic + mid.to_bytes(2, "big") + payload
        if len(chunk) >= 65536:
            sock.sendall(chunk)
            chunk.clear()
    sock.sendall(bytes(chunk) + b"")
    if not acked.wait(300):
        raise AssertionError("the broker did not acknowledge every QoS 1 publish")
    sock.sendall(b"\xe0\x00")
    sock.close()


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
            "--qos",
            str(Load.qos),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_for(ready.exists, 20, what=f"{role} subscriber")
    cpu_before = cpu_seconds(proc.pid)
    publish_load(broker_port, messages, [proc.pid])
    out, _ = proc.communicate(timeout=400)
    state = json.loads(out)
    span = max(state["last"] - state["first"], 1e-9)
    # messages after the first; the child reports its own CPU time at its end
    return {"count": state["count"], "rate": (state["count"] - 1) / span, "cpu": state["cpu"] - cpu_before}


def run_bridge(
    version: str,
    broker_port: int,
    redis_port: int,
    messages: int,
    workdir: Path,
    members: int = 0,
    repo: Path = REPO,
) -> dict[str, float]:
    """One plain bridge (members=0) or a bridge group of ``members`` processes, of ``repo``."""
    r = redis.Redis(port=redis_port)
    env = dict(os.environ)
    env.update(
        MQTT_BROKER_HOST="127.0.0.1",
        MQTT_BROKER_PORT=str(broker_port),
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(redis_port),
        MQTT_TOPICS=TOPIC,
        MQTT_PROTOCOL=version,
        # Enough history to count every message; the byte budget off for the same reason.
        HISTORY_MAXLEN=str(messages * 2),
        HISTORY_MAX_BYTES="0",
        LOG_LEVEL="WARNING",
        MQTT_CLIENT_ID=f"bench-bridge-{time.monotonic_ns()}",
        MQTT_SESSION_EXPIRY="0",  # a fresh client each round: no session to leave behind
    )
    env["PYTHONPATH"] = str(repo)  # ``python -m bridge`` of that checkout
    log = open(workdir / "bridge.log", "ab")  # noqa: SIM115 (kept open for the child's life)
    envs = [env]
    if members:
        envs = [
            {**env, "BRIDGE_GROUP": "bench", "MQTT_CLIENT_ID": f"{env['MQTT_CLIENT_ID']}-{n}"}
            for n in range(members)
        ]
    procs = [
        subprocess.Popen([sys.executable, "-m", "bridge"], env=e, cwd=repo, stdout=log, stderr=log)
        for e in envs
    ]

    def ready() -> bool:
        status = protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST))
        if not (status and status["connected"]):
            return False
        listed = [protocol.loads_object(v) or {} for v in r.hvals(protocol.KEY_MEMBERS)]
        return not members or (len(listed) == members and all(m.get("connected") for m in listed))

    try:
        wait_for(ready, 30, what="bridge")
        cpu_before = sum(cpu_seconds(proc.pid) for proc in procs)
        seen, rate = publish_and_count(r, protocol.KEY_HISTORY, broker_port, messages, [p.pid for p in procs])
        cpu = sum(cpu_seconds(proc.pid) for proc in procs) - cpu_before
        heartbeat = protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)) or {}
        distinct = _distinct_payloads(r) if members else seen
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        log.close()
    return {
        "count": seen,
        "distinct": distinct,
        "rate": rate,
        "cpu": cpu,
        "dropped": heartbeat.get("counters", {}).get("dropped", 0),
    }


def publish_and_count(
    r: redis.Redis, stream: str, broker_port: int, messages: int, contenders: list[int]
) -> tuple[int, float]:
    """Publish the load in a thread while counting the stream from the start: a contender that
    keeps up with a publisher that waits for its PUBACKs (QoS 1) is then timed too."""
    publisher = threading.Thread(target=publish_load, args=(broker_port, messages, contenders))
    publisher.start()
    try:
        return count_stream(r, stream, messages, publisher)
    finally:
        publisher.join(600)


def count_stream(
    r: redis.Redis, stream: str, messages: int, publisher: threading.Thread | None = None
) -> tuple[int, float]:
    """(entries seen, rate): the rate counts what came after the first sight of the stream."""
    first = last = 0.0
    seen, at_first, idle_since = 0, 0, time.monotonic()
    while seen < messages:
        count = r.xlen(stream)
        now = time.perf_counter()
        if count and not first:
            first, at_first = now, count
        if count != seen:
            seen, last, idle_since = count, now, time.monotonic()
        elif publisher is not None and publisher.is_alive():
            idle_since = time.monotonic()  # nothing lost while the load is still going out
        elif time.monotonic() - idle_since > IDLE_END:
            break
        time.sleep(0.002)
    return seen, (seen - at_first) / max(last - first, 1e-9)


def run_mq_bridge(broker_port: int, redis_port: int, messages: int, workdir: Path) -> dict[str, float]:
    """mq-bridge's route (bench/peers.py) in the peer's own venv, counted on its stream."""
    assert Load.mq_bridge_python is not None
    r = redis.Redis(port=redis_port)
    ready = workdir / f"ready-mq-bridge-{time.monotonic_ns()}"
    log = open(workdir / "mq-bridge.log", "ab")  # noqa: SIM115 (kept open for the child's life)
    proc = subprocess.Popen(
        [
            str(Load.mq_bridge_python),
            str(Path(peers.__file__)),
            str(broker_port),
            str(redis_port),
            MQ_BRIDGE_STREAM,
            str(ready),
            str(Load.qos),
        ],
        stdout=log,
        stderr=log,
    )
    try:
        wait_for(ready.exists, 30, what="mq-bridge")

        def probe_arrived() -> bool:  # subscribed once a probe message reaches its stream
            subprocess.run(["mosquitto_pub", "-p", str(broker_port), "-t", TOPIC, "-m", "probe"], check=True)
            return bool(r.xlen(MQ_BRIDGE_STREAM))

        wait_for(probe_arrived, 30, interval=0.5, what="mq-bridge's subscription")
        wait_for(lambda: _settled(r, MQ_BRIDGE_STREAM), 10, what="the probes")
        r.delete(MQ_BRIDGE_STREAM)
        cpu_before = cpu_seconds(proc.pid)
        seen, rate = publish_and_count(r, MQ_BRIDGE_STREAM, broker_port, messages, [proc.pid])
        cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
    return {"count": seen, "rate": rate, "cpu": cpu}


def _settled(r: redis.Redis, stream: str) -> bool:
    before = r.xlen(stream)
    time.sleep(0.3)
    return bool(r.xlen(stream) == before)


def _distinct_payloads(r: redis.Redis) -> int:
    """How many different numbered payloads mqtt:history holds (== its length: each once)."""
    numbers: set[bytes] = set()
    last = "-"
    while True:
        entries = r.xrange(protocol.KEY_HISTORY, min=last, count=10_000)
        if last != "-":
            entries = entries[1:]
        if not entries:
            return len(numbers)
        for _, fields in entries:
            payload = json.loads(fields[protocol.HISTORY_FIELD.encode()])["payload"]
            numbers.add(payload[:10].encode())
        last = entries[-1][0].decode()


def run_one(name: str, broker_port: int, redis_port: int, messages: int, workdir: Path) -> dict[str, float]:
    r = redis.Redis(port=redis_port)
    r.flushall()
    reader = Reader(redis_port, workdir)
    qos = Load.qos
    if name == "bridge-5-qos1":
        Load.qos = 1
    try:
        if name == "bridge-main":
            assert Load.compare_repo is not None
            outcome = run_bridge(
                DEFAULT_PROTOCOL, broker_port, redis_port, messages, workdir, repo=Load.compare_repo
            )
        elif name == "mq-bridge":
            outcome = run_mq_bridge(broker_port, redis_port, messages, workdir)
        elif name == "bridge-5-qos1":
            outcome = run_bridge("5", broker_port, redis_port, messages, workdir)
        elif name.startswith("bridge-"):
            outcome = run_bridge(name.split("-", 1)[1], broker_port, redis_port, messages, workdir)
        elif name.startswith("group-"):
            outcome = run_bridge("5", broker_port, redis_port, messages, workdir, members=int(name[6:]))
        else:
            outcome = run_baseline(name, broker_port, redis_port, messages, workdir)
    finally:
        Load.qos = qos
        outcome_read = reader.consumed()
    outcome["read"] = outcome_read
    return outcome


def report(results: dict[str, list[dict[str, float]]], messages: int, rounds: int) -> None:
    median = {k: statistics.median(x["rate"] for x in v) for k, v in results.items()}
    cpu = {
        k: statistics.median(x["cpu"] / max(x["count"], 1) * 100_000 for x in v) for k, v in results.items()
    }
    print(
        f"\n{messages:,} QoS {Load.qos} messages of {Load.size} bytes, a redis-cli reader on "
        f"{protocol.CHANNEL_MESSAGES}, {rounds} interleaved rounds; "
        f"bridge default MQTT_PROTOCOL={DEFAULT_PROTOCOL}"
        + ("; each contender drains a backlog the broker held (--backlog)" if Load.backlog else "")
    )
    print(
        f"  {'contender':14s} {'median msg/s':>13s}  {'range':>17s}  {'MB/s':>6s}  {'CPU s/100k':>10s}"
        "  lost (worst)  reader got (worst)"
    )
    for name, runs in results.items():
        rates = [x["rate"] for x in runs]
        lost = messages - min(x["count"] for x in runs)
        read = min(x["read"] for x in runs)
        read_text = "-" if name.startswith("bare") or name == "mq-bridge" else f"{read:,}"
        spread = f"{min(rates):>8,.0f}-{max(rates):<8,.0f}"
        megabytes = median[name] * Load.size / 1e6
        print(
            f"  {name:14s} {median[name]:>13,.0f}  {spread}  {megabytes:6.1f}  {cpu[name]:10.2f}"
            f"  {lost:>12,}  {read_text:>18s}"
        )
    load = statistics.median(PUBLISHER_RATES)
    verdict = "above every rate measured: not the limit" if load > max(median.values()) else "THE LIMIT"
    if Load.backlog:
        verdict = "published before the contender ran: not the limit"
    print(f"  {'load: mosquitto_pub -l':24s} {load:>10,.0f} msg/s  {verdict}")

    def ratio(a: str, b: str, target: str = "", of: dict[str, float] = median) -> None:
        if a in of and b in of:
            print(f"  {a + ' / ' + b:28s} {of[a] / of[b]:5.2f} x  {target}")

    print("ratios of medians (rate):")
    ratio("bridge-5", "mq-bridge", "(issue 23: target >= 1.0)")
    ratio("bridge-5", "bare-5", "(target >= 0.8)")
    ratio("bridge-3.1.1", "bare-3.1.1", "(target >= 0.8)")
    default = f"bridge-{DEFAULT_PROTOCOL if DEFAULT_PROTOCOL != '4' else '3.1.1'}"
    ratio(default, "naive", "(default settings; target >= 4)")
    other = "bridge-3.1.1" if default == "bridge-5" else "bridge-5"
    ratio(other, "naive")
    ratio("bare-5", "naive", "(stays below 4)")
    ratio("bare-3.1.1", "naive")
    ratio("bridge-5", "bare-3.1.1", "(stretch: > 1)")
    ratio("bridge-3.1.1", "bare-3.1.1")
    ratio("bridge-5", "bridge-main")
    ratio("bridge-5-qos1", "bridge-5", "(issue 23: target >= 0.9)")
    ratio("group-2", "bridge-5", "(scaling out: target >= 1.5)")
    ratio("group-2", "group-1")
    print("ratios of medians (CPU seconds per message):")
    ratio("bridge-5", "mq-bridge", "(issue 23: target <= 1.2)", of=cpu)
    ratio("bridge-5", "bare-5", of=cpu)
    ratio("bridge-5", "bridge-main", of=cpu)
    for name in ("group-1", "group-2"):
        if name in results:
            exact = all(x["distinct"] == x["count"] == messages for x in results[name])
            print(f"  {name}: every message exactly once in mqtt:history in every round: {exact}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--only",
        default=",".join(n for n in CONTENDERS if n not in ("bridge-main", "bridge-5-qos1")),
        help="comma-separated subset to measure",
    )
    parser.add_argument("--payload-bytes", type=int, default=Load.size, help="each message's payload size")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0, help="QoS of the load (publisher)")
    parser.add_argument(
        "--compare-repo", type=Path, help="another checkout to run as bridge-main (say, main)"
    )
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="stop each contender while the load is published, then time how fast it drains the "
        "broker's backlog: its capacity, whatever the publisher's rate",
    )
    parser.add_argument("--role", choices=("bare-5", "bare-3.1.1", "naive"))
    parser.add_argument("--broker-port", type=int)
    parser.add_argument("--redis-port", type=int)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    Load.size, Load.qos, Load.compare_repo = args.payload_bytes, args.qos, args.compare_repo
    Load.backlog = args.backlog
    if args.role:
        subscriber(args.role, args.broker_port, args.redis_port, args.messages, args.ready_file)
        return

    names = [n for n in CONTENDERS if n in args.only.split(",")]
    if "bridge-main" in names and args.compare_repo is None:
        parser.error("bridge-main needs --compare-repo")
    if "mq-bridge" in names:
        Load.mq_bridge_python = peers.ensure_mq_bridge()
        if Load.mq_bridge_python is None:
            names.remove("mq-bridge")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = start_mosquitto(workdir, extra="max_queued_messages 0\nmax_queued_bytes 0\n")
        redis_server = start_redis(workdir, free_port())
        results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        try:
            for round_ in range(args.rounds):
                # Rotate the order each round, so no contender always runs first or last.
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                for name in order:
                    results[name].append(
                        run_one(name, broker.port, redis_server.port, args.messages, workdir)
                    )
                rates = ", ".join(f"{k} {v[-1]['rate']:,.0f}/s" for k, v in results.items())
                print(f"round {round_ + 1}: {rates}", flush=True)
        finally:
            broker.stop()
            redis_server.stop()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report(results, args.messages, args.rounds)


if __name__ == "__main__":
    main()
