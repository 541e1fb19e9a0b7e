"""scripts/run-local.sh (what `make run` runs): the whole stack comes up, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import signal
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from bridge.contract import protocol
from tests.helpers import REPO, env_with, free_port, wait_for

pytestmark = pytest.mark.integration

SCRIPT = REPO / "scripts" / "run-local.sh"


def processes_with(marker: str) -> list[str]:
    """Command lines of every process whose environment carries ``marker`` (all our descendants)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return json.load(response)["broker"]["connected"] is True
    except OSError:  # refused, or HTTPError 503 while the bridge warms up
        return False


def listening_addresses(port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The local addresses of every socket that listens on TCP ``port``, read from /proc/net/tcp
    and tcp6 (what the kernel has, whatever a config file says)."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(ipaddress.ip_address(words))
    return found


def assert_loopback_only(ports: dict[str, int]) -> None:
    """Everything the script opened listens on loopback only: an anonymous broker (or an open
    Redis) must never be reachable from the network."""
    for name, port in ports.items():
        addresses = listening_addresses(port)
        assert addresses, f"nothing listens on {name}={port}"
        for address in addresses:
            mapped = getattr(address, "ipv4_mapped", None)
            assert address.is_loopback or (mapped is not None and mapped.is_loopback), (
                f"{name}={port} listens on {address}, not only on loopback"
            )


# The tests that run the whole script need what it would otherwise build first.
needs_the_built_project = pytest.mark.skipif(
    not (REPO / "dashboard" / "static" / "index.html").exists()
    or not (REPO / ".venv" / "bin" / "mqtt-dashboard").exists(),
    reason="no built frontend or no .venv with the project (run-local.sh would build them first)",
)
# Settings of the environment pytest runs in that would change what the script does.
CALLERS_SETTINGS = ("DASHBOARD_TOKEN", "DASHBOARD_PASSWORD", "DASHBOARD_AUTH", "REDIS_URL")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def running_script(
    tmp_path: Path, ports: dict[str, int], unset: tuple[str, ...] = CALLERS_SETTINGS, **settings: str
) -> Iterator[Path]:
    """run-local.sh on ``ports``, with ``settings`` and without ``unset`` from this environment,
    its output in the file yielded. When the body is done: Ctrl-C (SIGINT) must stop it (exit 130)
    and leave no process it started (every one inherits a marker in its environment)."""
    marker = uuid.uuid4().hex
    env = env_with(RUN_DIR=str(tmp_path / "run"), **{k: str(v) for k, v in ports.items()}, **settings)
    for name in unset:
        env.pop(name, None)
    env["RUN_LOCAL_TEST_MARKER"] = marker
    output = tmp_path / "output.txt"
    with output.open("wb") as out:
        # As from a terminal: Ctrl-C acts. (A pytest-xdist worker ignores SIGINT, and bash cannot
        # trap a signal that was ignored when it started.)
        script = subprocess.Popen(
            ["bash", str(SCRIPT)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint,
        )
    try:
        yield output
        script.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert script.wait(timeout=30) == 130
    finally:
        if script.poll() is None:
            script.terminate()
            script.wait(timeout=30)
    assert processes_with(marker) == [], output.read_text()[-3000:]


@needs_the_built_project
def test_run_local_starts_everything_on_loopback_only_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    ports = {
        name: free_port() for name in ("MQTT_BROKER_PORT", "MQTT_WS_PORT", "REDIS_PORT", "DASHBOARD_PORT")
    }
    with running_script(tmp_path, ports) as output:
        wait_for(lambda: "run-local: dashboard: " in output.read_text(), 60, what="the dashboard URL")
        url = next(line for line in output.read_text().splitlines() if "run-local: dashboard: " in line)
        assert f"http://127.0.0.1:{ports['DASHBOARD_PORT']}/?token=" in url
        # The address once, last, on its own: the programs' logs go to their files.
        lines = [line for line in output.read_text().splitlines() if line.strip()]
        assert lines[-1] == url and sum("token=" in line for line in lines) == 1, lines
        assert (tmp_path / "run" / "logs" / "bridge.log").exists()
        # mosquitto 2.0 binds a websockets listener to every interface unless told otherwise
        assert_loopback_only(ports)

        db = redis.Redis(port=ports["REDIS_PORT"], decode_responses=True)

        def demo_traffic_forwarded() -> bool:
            entries = db.xrevrange(protocol.KEY_HISTORY, count=50)
            return any(json.loads(f[protocol.HISTORY_FIELD])["topic"].startswith("demo/") for _, f in entries)

        wait_for(demo_traffic_forwarded, 20, what="demo traffic in mqtt:history")
        db.close()
        with urllib.request.urlopen(
            f"http://127.0.0.1:{ports['DASHBOARD_PORT']}/health", timeout=5
        ) as health:
            assert json.load(health)["broker"]["connected"] is True

    text = output.read_text()
    assert "run-local: stopped" in text
    assert "ERROR" not in text and "Traceback" not in text, text[-3000:]  # Ctrl-C stops quietly
    for log in ("bridge.log", "dashboard.log"):
        logged = (tmp_path / "run" / "logs" / log).read_text()
        assert " ERROR " not in logged and "Traceback" not in logged, logged[-3000:]


@pytest.mark.skipif(
    not (REPO / ".venv" / "bin" / "mqtt-dashboard").exists(), reason="no .venv with the project"
)
def test_run_local_says_which_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = env_with(
            RUN_DIR=str(tmp_path / "run"),
            MQTT_BROKER_PORT=str(free_port()),
            MQTT_WS_PORT=str(free_port()),
            REDIS_PORT=str(port),
            DASHBOARD_PORT=str(free_port()),
        )
        result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"port {port} (REDIS_PORT) is already in use" in result.stderr
    assert not (tmp_path / "run").exists()  # nothing started, nothing written


def free_port_pair() -> int:
    """A free port whose next port is free too (broker 2 of RUN_BROKERS=2 takes it)."""

    def free(port: int) -> bool:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    return wait_for(lambda: (p := free_port()) < 65535 and free(p + 1) and p, 5, what="two free ports")


@needs_the_built_project
def test_run_brokers_2_starts_two_brokers_and_bridges_with_demo_data_on_both(tmp_path: Path) -> None:
    ports = {
        "MQTT_BROKER_PORT": free_port_pair(),
        "MQTT_WS_PORT": free_port_pair(),
        "REDIS_PORT": free_port(),
        "DASHBOARD_PORT": free_port(),
    }
    with running_script(tmp_path, ports, (*CALLERS_SETTINGS, "BRIDGE_NAME"), RUN_BROKERS="2") as output:
        wait_for(lambda: "run-local: dashboard: " in output.read_text(), 60, what="the dashboard URL")
        second_broker = {
            "MQTT_BROKER_PORT+1": ports["MQTT_BROKER_PORT"] + 1,
            "MQTT_WS_PORT+1": ports["MQTT_WS_PORT"] + 1,
        }
        assert_loopback_only(ports | second_broker)
        db = redis.Redis(port=ports["REDIS_PORT"], decode_responses=True)

        def demo_in(names: protocol.Names) -> bool:
            entries = db.xrevrange(names.KEY_HISTORY, count=50)
            return any(json.loads(f[protocol.HISTORY_FIELD])["topic"].startswith("demo/") for _, f in entries)

        wait_for(lambda: demo_in(protocol.Names()), 30, what="demo traffic of broker 1")
        wait_for(lambda: demo_in(protocol.Names("broker-2")), 30, what="demo traffic of broker-2")
        second = protocol.loads_object(db.get(protocol.Names("broker-2").KEY_STATUS_LATEST)) or {}
        assert second.get("broker") == f"127.0.0.1:{ports['MQTT_BROKER_PORT'] + 1}"
        assert set(db.zrange(protocol.KEY_BROKER_REGISTRY, 0, -1)) == {"default", "broker-2"}
        db.close()

        def both_healthy() -> bool:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{ports['DASHBOARD_PORT']}/health", timeout=5
                ) as r:
                    body = json.load(r)
            except OSError:
                return False
            return body["brokers"] == {
                "default": {"online": True, "connected": True, "dropping": False},
                "broker-2": {"online": True, "connected": True, "dropping": False},
            }

        wait_for(both_healthy, 20, what="/health to report both brokers")


@needs_the_built_project
def test_run_local_with_dynamic_security_bootstraps_the_bridge_account_and_serves_tenants(
    tmp_path: Path,
) -> None:
    ports = {
        name: free_port() for name in ("MQTT_BROKER_PORT", "MQTT_WS_PORT", "REDIS_PORT", "DASHBOARD_PORT")
    }
    run_dir = tmp_path / "run"
    unset = ("DASHBOARD_PASSWORD", "DASHBOARD_AUTH", "REDIS_URL", "CONFIG_SECRET_KEY")
    with running_script(tmp_path, ports, unset, RUN_DYNSEC="1", DASHBOARD_TOKEN="dynsec-run-token") as output:
        wait_for(lambda: "run-local: dashboard: " in output.read_text(), 60, what="the dashboard URL")
        wait_for(lambda: healthy(ports["DASHBOARD_PORT"]), 30, what="the bridge connected as mqtt-bridge")
        text = output.read_text()
        assert "created the bridge's account mqtt-bridge" in text
        password = (run_dir / "dynsec-bridge-password").read_text().strip()
        assert password and password not in text  # said where it is, never what it is
        assert (run_dir / "dynsec-bridge-password").stat().st_mode & 0o077 == 0

        base = f"http://127.0.0.1:{ports['DASHBOARD_PORT']}"
        headers = {"Authorization": "Bearer dynsec-run-token", "Origin": base}
        created = requests.post(f"{base}/api/tenants", json={"name": "acme"}, headers=headers, timeout=20)
        assert created.status_code == 201 and created.json()["topic"] == "tenants/acme/#", created.text
        listed = requests.get(f"{base}/api/tenants", headers=headers, timeout=20).json()
        assert [t["name"] for t in listed["tenants"]] == ["acme"]
