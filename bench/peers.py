"""Peers outside this project, run by the benchmarks as contenders (a benchmark, not a test).

mq-bridge (PyPI, a Rust core with Python bindings) is the fastest peer measured: MQTT in, one
Redis Streams XADD of the raw payload out (no topic, no pub/sub). It is never a dependency of the
project: ``ensure_mq_bridge`` installs the pinned version into a venv of its own under ``.bench/``
the first time it is asked for, and this file, run by that venv's Python, is its route:

    .bench/mq-bridge-1.2.0/bin/python bench/peers.py BROKER_PORT REDIS_PORT STREAM READY_FILE
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MQ_BRIDGE_VERSION = "1.2.0"
MQ_BRIDGE_VENV = REPO / ".bench" / f"mq-bridge-{MQ_BRIDGE_VERSION}"
TOPIC = "bench/line"


def ensure_mq_bridge() -> Path | None:
    """The Python of a venv with mq-bridge installed, or None (said why) when it cannot be had."""
    python = MQ_BRIDGE_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"installing mq-bridge {MQ_BRIDGE_VERSION} into {MQ_BRIDGE_VENV} (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(MQ_BRIDGE_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                f"mq-bridge=={MQ_BRIDGE_VERSION}",
            ],
            check=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"mq-bridge could not be installed ({exc}); its contender is left out", flush=True)
        return None
    return python


def route(broker_port: int, redis_port: int, stream: str, ready_file: str, qos: int) -> None:
    """mq-bridge's route with its defaults: MQTT (v5, as the bridge) -> Redis Streams."""
    from mq_bridge import Route  # the peer's venv only

    config = {
        "input": {
            "mqtt": {
                "url": f"mqtt://127.0.0.1:{broker_port}",
                "topic": TOPIC,
                "qos": qos,
                "protocol": "v5",
                "client_id": f"bench-mq-bridge-{stream}",
            }
        },
        "output": {"redis_streams": {"url": f"redis://127.0.0.1:{redis_port}", "stream": stream}},
    }
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    running = Route.from_config(config)
    running.start()
    Path(ready_file).write_text("started")
    stop.wait(600)
    running.stop()


if __name__ == "__main__":
    route(
        int(sys.argv[1]),
        int(sys.argv[2]),
        sys.argv[3],
        sys.argv[4],
        int(sys.argv[5]) if len(sys.argv) > 5 else 0,
    )
