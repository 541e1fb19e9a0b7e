"""Shared test helpers: free ports, deadline waits, and real mosquitto / redis-server processes."""

from __future__ import annotations

import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import redis

from bridge.contract import protocol

# The broker under test (MOSQUITTO_BIN), offered to the rings from here with the other helpers.
from tests.mosquitto_bin import DYNSEC_PLUGIN as DYNSEC_PLUGIN
from tests.mosquitto_bin import MOSQUITTO as MOSQUITTO
from tests.mosquitto_bin import MOSQUITTO_VERSION as MOSQUITTO_VERSION
from tests.mosquitto_bin import mosquitto_env as mosquitto_env
from tests.mosquitto_bin import tool as tool

REPO = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


# Under pytest-xdist each worker draws ports from its own range of 2,000 (12000-21999 for up to
# five workers), so no two workers pick the same port between the check and the server's bind. The
# range sits below Linux's ephemeral ports (32768-60999), and a Redis Cluster node's bus port
# (+10000) lands in 22000-31999, which no worker draws from.
_WORKER_PORTS = 2000
_handed_out: set[int] = set()


def worker_port_range() -> range | None:
    """This xdist worker's own ports, or None when the tests run in one process.

    ``TEST_PORT_SLOT_OFFSET`` shifts a whole pytest session's workers to other ranges, so that two
    sessions can run at once (make test runs the mosquitto 2.1 session beside the main one)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", … when run in parallel
    if not worker.startswith("gw"):
        return None
    slot = int(worker[2:]) + int(os.environ.get("TEST_PORT_SLOT_OFFSET") or 0)
    low = 12000 + slot % 5 * _WORKER_PORTS
    return range(low, low + _WORKER_PORTS)


def free_port(also_free: int | None = None) -> int:
    """A free loopback port (and, with ``also_free``, one whose port + also_free is free too)."""
    ports = worker_port_range()
    if ports is None and also_free is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    ports = ports or range(10240, 22000)
    for _ in range(2000):
        port = random.choice(ports)
        if port in _handed_out:
            continue
        wanted = [port] if also_free is None else [port, port + also_free]
        if all(_bindable(p) for p in wanted):
            _handed_out.add(port)
            return port
    raise AssertionError(f"no free port in {ports}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll until ``predicate()`` is truthy and return its value; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Process:
    """A server binary on a loopback port; stop() kills it, restart() brings it back on the same port."""

    def __init__(self, argv: list[str], port: int, log: Path, env: dict[str, str] | None = None):
        self.argv = argv
        self.port = port
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        wait_for(lambda: port_open(self.port) or self._died(), timeout, what=f"{self.argv[0]} on {self.port}")
        if self._died():
            raise AssertionError(f"{self.argv[0]} exited: {self.log.read_text()[-2000:]}")

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        wait_for(lambda: not port_open(self.port), 5, what=f"port {self.port} to close")

    def restart(self) -> None:
        self.stop()
        self.start()


def mosquitto_config(port: int, workdir: Path, extra: str = "") -> Path:
    """A test broker: loopback only, anonymous, fast $SYS, client log lines on $SYS/broker/log."""
    conf = workdir / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "sys_interval 1\n"
        "log_dest topic\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        "connection_messages true\n"
        "max_queued_messages 200000\n"
        "persistence false\n" + extra
    )
    return conf


def start_mosquitto(workdir: Path, port: int | None = None, extra: str = "") -> Process:
    port = port or free_port()
    proc = Process(
        [MOSQUITTO, "-c", str(mosquitto_config(port, workdir, extra))],
        port,
        workdir / f"mosquitto-{port}.log",
        mosquitto_env(),
    )
    proc.start()
    return proc


def start_redis(workdir: Path, port: int | None = None) -> Process:
    port = port or free_port()
    data = workdir / f"redis-{port}"
    data.mkdir(exist_ok=True)
    argv = [
        REDIS_SERVER,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
    ]
    proc = Process(argv, port, workdir / f"redis-{port}.log")
    proc.start()
    return proc


def env_with(**values: str) -> dict[str, str]:
    """The current environment plus test settings (for subprocesses)."""
    env = dict(os.environ)
    env.update(values)
    return env


# --- the shipped mosquitto configs, rendered onto free ports ----------------------------------

MOSQUITTO_CONF = REPO / "mosquitto" / "mosquitto.conf"
MOSQUITTO_SECURED_CONF = REPO / "mosquitto" / "mosquitto.secured.conf"
MOSQUITTO_SECURED_21_CONF = REPO / "mosquitto" / "mosquitto.secured-2.1.conf"  # 2.1's plugins


def render_mosquitto_conf(
    text: str,
    *,
    mqtt_port: int,
    ws_port: int,
    data_dir: Path,
    paths: dict[str, Path] | None = None,
    plugin_dir: Path | None = None,
) -> str:
    """A shipped config with other ports and paths, as scripts/run-local.sh renders it.

    Rewrites the lines ``listener 1883``, ``listener 9001`` and ``persistence_location ...`` (plus
    any directive named in ``paths``, e.g. ``{"password_file": ...}``; with ``plugin_dir``, every
    ``plugin /usr/lib/NAME`` becomes ``plugin PLUGIN_DIR/NAME``) and appends ``user <whoever
    runs the tests>``: started as root, mosquitto would otherwise switch to the ``mosquitto`` user,
    which cannot write a temporary folder, and its logging would stop.
    """
    replacements = {
        "listener 1883": f"listener {mqtt_port} 127.0.0.1",
        # socket_domain: else mosquitto 2.0's websockets listener binds every interface (run-local.sh)
        "listener 9001": f"listener {ws_port} 127.0.0.1\nsocket_domain ipv4",
        r"persistence_location \S+": f"persistence_location {data_dir}/",
    }
    for directive, path in (paths or {}).items():
        replacements[rf"{re.escape(directive)} \S+"] = f"{directive} {path}"
    if plugin_dir is not None:
        text = re.sub(r"^plugin /usr/lib/(\S+)$", rf"plugin {plugin_dir}/\1", text, flags=re.MULTILINE)
    for pattern, line in replacements.items():
        text, count = re.subn(rf"^{pattern}$", line, text, flags=re.MULTILINE)
        if count != 1:
            raise ValueError(f"expected exactly one line matching {pattern!r} in the mosquitto config")
    user = pwd.getpwuid(os.geteuid()).pw_name
    return f"{text.rstrip()}\n\n# added by tests/helpers.py\nuser {user}\n"


class ShippedMosquitto(Process):
    """The real broker running a shipped config (mosquitto/*.conf) on free MQTT and WebSocket ports."""

    def __init__(
        self,
        workdir: Path,
        source: Path = MOSQUITTO_CONF,
        paths: dict[str, Path] | None = None,
        plugin_dir: Path | None = None,
    ):
        port, self.ws_port = free_port(), free_port()
        data_dir = workdir / f"mosquitto-data-{port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        conf = workdir / f"mosquitto-{port}.conf"
        conf.write_text(
            render_mosquitto_conf(
                source.read_text(),
                mqtt_port=port,
                ws_port=self.ws_port,
                data_dir=data_dir,
                paths=paths,
                plugin_dir=plugin_dir,
            )
        )
        super().__init__(
            [MOSQUITTO, "-c", str(conf)], port, workdir / f"mosquitto-{port}.log", mosquitto_env()
        )

    def start(self, timeout: float = 10.0) -> None:
        super().start(timeout)
        wait_for(lambda: port_open(self.ws_port), timeout, what=f"websocket listener on {self.ws_port}")


# --- an MQTT client that records what it receives ---------------------------------------------


class MqttRecorder:
    """A paho client that subscribes and keeps every message it receives, for assertions."""

    def __init__(
        self,
        port: int,
        topics: str | list[str],
        *,
        host: str = "127.0.0.1",
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        transport: str = "tcp",
    ):
        self._lock = threading.Lock()
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.connect_result: Any = None
        self.granted: list[Any] = []
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            transport=transport,  # type: ignore[arg-type]  # "tcp" or "websockets"
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.connect_result = reason_code
        if not reason_code.is_failure:
            client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        self.granted = list(reason_codes)
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def start(self, timeout: float = 10.0) -> MqttRecorder:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, timeout, what=f"subscription to {self.topics}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # The callbacks are bound methods of this recorder, which holds the client: a cycle. Left
        # to the garbage collector, paho's sockets may be finalized before the client closes them,
        # and filterwarnings=error turns the ResourceWarning into a failure in an unrelated test.
        self.client.on_connect = self.client.on_subscribe = self.client.on_message = None

    def received(self, predicate: Callable[[mqtt.MQTTMessage], bool] | None = None) -> list[mqtt.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if predicate is None or predicate(m)]

    def __enter__(self) -> MqttRecorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- the dashboard, as `mqtt-dashboard` runs it (Gunicorn, gevent workers) ---------------------

LOGIN_LINE = re.compile(r"log in at (http://\S+/\?token=(\S+))")
RELAY_LINE = re.compile(r"relay \(pid (\d+)\) subscribed")


class DashboardProcess:
    """``mqtt-dashboard`` on a free loopback port with test settings; the log is kept for failures.

    Without ``DASHBOARD_TOKEN``/``DASHBOARD_PASSWORD`` in ``settings`` the dashboard generates a
    token; ``token`` then holds the one it printed in its login URL.
    """

    def __init__(self, workdir: Path, redis_port: int, workers: int = 2, **settings: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = env_with(
            **{
                "DASHBOARD_HOST": "127.0.0.1",
                "DASHBOARD_PORT": str(self.port),
                "DASHBOARD_WORKERS": str(workers),
                "REDIS_HOST": "127.0.0.1",
                "REDIS_PORT": str(redis_port),
                **settings,
            }
        )
        self.token: str | None = settings.get("DASHBOARD_TOKEN") or None
        self.log = workdir / f"dashboard-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def command() -> list[str]:
        script = Path(sys.executable).with_name("mqtt-dashboard")
        return [str(script)] if script.exists() else [sys.executable, "-m", "dashboard.runner"]

    def start(self, timeout: float = 20.0) -> DashboardProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command(), env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(self.port) or self._died(), timeout, what=f"the dashboard on {self.port}")
        if self._died():
            raise AssertionError(f"mqtt-dashboard exited:\n{self.output()}")
        generated = not self.env.get("DASHBOARD_PASSWORD") and self.env.get("DASHBOARD_AUTH") != "off"
        if self.token is None and generated:
            found = wait_for(lambda: LOGIN_LINE.search(self.output()), timeout, what="the login URL")
            self.token = found.group(2)
        # Ready when every worker has loaded the app and its relay has subscribed to Redis.
        wait_for(
            lambda: len(set(RELAY_LINE.findall(self.output()))) >= self.workers or self._died(),
            timeout,
            what=f"{self.workers} dashboard workers to be ready",
        )
        if self._died():
            raise AssertionError(f"mqtt-dashboard exited:\n{self.output()}")
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    @property
    def pid(self) -> int:
        """Gunicorn's master: mqtt-dashboard execs it, so the pid is the one started."""
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --- the bridge itself ------------------------------------------------------------------------


class BridgeProcess:
    """``python -m bridge`` with test settings; the log is kept for failure messages."""

    def __init__(self, workdir: Path, broker_port: int, redis_port: int, **settings: str):
        defaults = {
            "MQTT_BROKER_HOST": "127.0.0.1",
            "MQTT_BROKER_PORT": str(broker_port),
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(redis_port),
            "MQTT_TOPICS": "#",
            "STATS_INTERVAL": "1",
            "LOG_LEVEL": "INFO",
        }
        self.env = env_with(**{**defaults, **settings})
        self.names = protocol.Names(settings.get("BRIDGE_NAME") or None)  # where it writes
        self.log = workdir / f"bridge-{time.monotonic_ns()}.log"
        self.redis = redis.Redis(port=redis_port, socket_timeout=5)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_connected: bool = True) -> BridgeProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge"], env=self.env, stdout=out, stderr=out
            )
        if wait_connected:
            self.wait_connected()
        return self

    def status(self) -> dict[str, Any] | None:
        try:
            return protocol.loads_object(self.redis.get(self.names.KEY_STATUS_LATEST))
        except redis.RedisError:
            return None

    def wait_connected(self, timeout: float = 15.0) -> None:
        def connected() -> bool:
            self.assert_alive()
            status = self.status()
            return bool(status and status["connected"] and self.redis.exists(self.names.KEY_HEARTBEAT))

        wait_for(connected, timeout, what="the bridge to report connected")

    def assert_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"bridge exited with {self.proc.returncode}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        """Send ``sig``; returns (exit code, seconds it took to exit)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"bridge ignored {sig} for 10 s:\n{self.output()}") from None
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# --- a broker with the dynamic security plugin (mosquitto/mosquitto.dynsec.conf) --------------

MOSQUITTO_DYNSEC_CONF = REPO / "mosquitto" / "mosquitto.dynsec.conf"
MOSQUITTO_CTRL = tool("mosquitto_ctrl")
DYNSEC_BRIDGE_USER = "mqtt-bridge"
DYNSEC_BRIDGE_PASSWORD = "bridge-test-password"  # a throwaway test broker's


class DynsecMosquitto(ShippedMosquitto):
    """The shipped dynsec config on free ports, bootstrapped as docs/mosquitto.md says: ``dynsec
    init`` for the bridge's account, then the data role added with ``mosquitto_ctrl``."""

    def __init__(self, workdir: Path):
        self.config_file = workdir / "dynamic-security.json"
        subprocess.run(
            [
                MOSQUITTO_CTRL,
                "dynsec",
                "init",
                str(self.config_file),
                DYNSEC_BRIDGE_USER,
                DYNSEC_BRIDGE_PASSWORD,
            ],
            check=True,
            capture_output=True,
            env=mosquitto_env(),
        )
        super().__init__(
            workdir,
            source=MOSQUITTO_DYNSEC_CONF,
            paths={"plugin": Path(DYNSEC_PLUGIN), "plugin_opt_config_file": self.config_file},
        )

    def start(self, timeout: float = 10.0) -> None:
        super().start(timeout)
        for args in (
            ["createRole", "bridge-data"],
            ["addRoleACL", "bridge-data", "publishClientSend", "#", "allow"],
            ["addClientRole", DYNSEC_BRIDGE_USER, "bridge-data"],
        ):
            self.ctrl(*args)

    def ctrl(self, *args: str) -> str:
        done = subprocess.run(
            [
                MOSQUITTO_CTRL,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-u",
                DYNSEC_BRIDGE_USER,
                "-P",
                DYNSEC_BRIDGE_PASSWORD,
                "dynsec",
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=15,
            env=mosquitto_env(),
        )
        return done.stdout
