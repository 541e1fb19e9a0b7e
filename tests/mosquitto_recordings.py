"""What a real broker says, recorded: its log lines for one scripted session, and its
dynamic-security plugin's ``listClients`` answer. The client list is built from both, and mosquitto
2.0 and 2.1 differ in each.

The session plays every way a client comes and goes with raw MQTT packets (so nothing but the step
itself happens on the wire) and keeps the lines on ``$SYS/broker/log/#`` each step caused.
``EXPECTED`` is what the client list must hold after each step, the same for every version.

- ``tests/unit/bridge/insight/mosquitto_recordings/{log,list-clients}-<version>.json`` were
  recorded on Debian's 2.0.11 and on 2.1.2: ``python -m tests.mosquitto_recordings`` (with
  ``MOSQUITTO_BIN`` for the other line) records them again;
- ``tests/integration/test_mosquitto_lines.py`` plays the session live on the broker under test.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

LOG_TOPIC = "$SYS/broker/log/#"
RECORDINGS = Path(__file__).resolve().parent / "unit" / "bridge" / "insight" / "mosquitto_recordings"
V31, V311, V5 = 3, 4, 5  # the protocol level byte of CONNECT
DISCONNECT_SESSION_TAKEN_OVER = 0x8E


# --- raw MQTT: exactly the packets a step needs, nothing else ---------------------------------


def _utf8(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, body: bytes) -> bytes:
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([kind]) + encoded + body


def connect(
    port: int,
    client_id: str,
    level: int,
    keepalive: int = 60,
    username: str | None = None,
    password: str | None = None,
) -> socket.socket:
    """A connected client that sends nothing by itself (no pings: it misses its keepalive)."""
    name = b"\x00\x06MQIsdp" if level == V31 else b"\x00\x04MQTT"
    # clean session / clean start, and the user name and password flags
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    header = name + bytes([level, flags]) + struct.pack("!H", keepalive) + (b"\x00" if level == V5 else b"")
    payload = _utf8(client_id) + b"".join(_utf8(v) for v in (username, password) if v is not None)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(_packet(0x10, header + payload))
    connack = read_packet(sock)
    if connack is None or connack[0] != 0x20 or connack[1][1] != 0:
        sock.close()
        raise AssertionError(f"{client_id} was not accepted: {connack!r}")
    return sock


def read_packet(sock: socket.socket) -> tuple[int, bytes] | None:
    """One packet (first byte, body), or None when the broker closed the connection."""
    try:
        first = sock.recv(1)
        if not first:
            return None
        length, shift = 0, 0
        while True:
            byte = sock.recv(1)[0]
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        body = b""
        while len(body) < length:
            chunk = sock.recv(length - len(body))
            if not chunk:
                return None
            body += chunk
        return first[0], body
    except (OSError, IndexError):
        return None


def disconnect(sock: socket.socket) -> None:
    sock.sendall(b"\xe0\x00")  # DISCONNECT, normal (MQTT 5: no reason code means 0x00)
    sock.close()


# --- the scenario -------------------------------------------------------------------------------


_CLIENT_LINES = ("New client connected", "New bridge connected", "Client ", "Socket error on client")


@dataclass
class Step:
    name: str
    mentions: str  # the client id whose lines end the step
    count: int  # how many lines about that id the step causes (the same on 2.0 and 2.1)
    lines: list[str] = field(default_factory=list)
    note: str = ""  # what a client saw on its side, where that is part of the difference


# The client list after each step: {client id: (protocol, username)}; the same for every version.
EXPECTED: dict[str, dict[str, tuple[str, str | None]]] = {}
_state: dict[str, tuple[str, str | None]] = {}
for _step, _change in [
    ("an MQTT 3.1 client connects with a user name", {"+": ("v31-client", "MQTT 3.1", "alice")}),
    ("an MQTT 3.1.1 client connects", {"+": ("v311-client", "MQTT 3.1.1", None)}),
    ("a client id with spaces connects", {"+": ("my sensor 7", "MQTT 3.1.1", "bob")}),
    ("the MQTT 3.1 client disconnects cleanly", {"-": "v31-client"}),
    ("the MQTT 3.1.1 client closes its socket without DISCONNECT", {"-": "v311-client"}),
    ("the client with spaces breaks the protocol", {"-": "my sensor 7"}),
    ("an MQTT 5 client connects with a keepalive of 1 s", {"+": ("v5-client", "MQTT 5", None)}),
    ("the MQTT 5 client misses its keepalive", {"-": "v5-client"}),
    ("an MQTT 5 client connects as twin", {"+": ("twin", "MQTT 5", None)}),
    ("another MQTT 5 client takes over the id twin", {"+": ("twin", "MQTT 5", None)}),
    ("twin disconnects cleanly", {"-": "twin"}),
    ("another broker's bridge connects", {"+": ("bridge-b", "MQTT 3.1.1", None)}),
    ("the other broker stops", {"-": "bridge-b"}),
]:
    if "+" in _change:
        client_id, proto, user = _change["+"]
        _state[client_id] = (proto, user)
    else:
        _state.pop(str(_change["-"]), None)
    EXPECTED[_step] = dict(_state)


class LogRecorder:
    """Every line the broker logs on ``$SYS/broker/log/#``, in order."""

    def __init__(self, port: int):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="log-recorder")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe(LOG_TOPIC)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise AssertionError("could not subscribe to the broker's log")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.lines.append(message.payload.decode("utf-8", "replace"))
            self._cond.notify_all()

    def take(self, step: Step, start: int, timeout: float = 15.0) -> int:
        """Wait for the step's lines (those after ``start``); return where the next step starts."""

        def about(line: str) -> bool:  # a connect or disconnect line, not e.g. "Invalid QoS … from ID"
            text = line.split(": ", 1)[-1]
            return text.startswith(_CLIENT_LINES) and f" {step.mentions} " in f"{text} "

        with self._cond:
            done = self._cond.wait_for(
                lambda: sum(about(x) for x in self.lines[start:]) >= step.count, timeout
            )
            if not done:
                raise AssertionError(
                    f"{step.name}: expected {step.count} lines about {step.mentions}: {self.lines[start:]}"
                )
            step.lines = list(self.lines[start:])
            return len(self.lines)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client.on_message = self.client.on_subscribe = self.client.on_connect = None


def play(port: int, start_bridge: Any) -> list[Step]:
    """Play every step against the broker on ``port``; ``start_bridge(name)`` starts another broker
    whose bridge connects with that client id and returns a function that stops it."""
    recorder = LogRecorder(port)
    steps: list[Step] = []
    at = len(recorder.lines)
    try:

        def step(name: str, mentions: str, count: int = 1) -> None:
            nonlocal at
            steps.append(Step(name, mentions, count))
            at = recorder.take(steps[-1], at)

        v31 = connect(port, "v31-client", V31, username="alice")
        step("an MQTT 3.1 client connects with a user name", "v31-client")
        v311 = connect(port, "v311-client", V311)
        step("an MQTT 3.1.1 client connects", "v311-client")
        spaced = connect(port, "my sensor 7", V311, username="bob")
        step("a client id with spaces connects", "my sensor 7")
        disconnect(v31)
        step("the MQTT 3.1 client disconnects cleanly", "v31-client")
        v311.close()
        step("the MQTT 3.1.1 client closes its socket without DISCONNECT", "v311-client")
        spaced.sendall(b"\x36\x00")  # PUBLISH with QoS 3: a protocol error
        step("the client with spaces breaks the protocol", "my sensor 7")
        spaced.close()
        v5 = connect(port, "v5-client", V5, keepalive=1)  # and then silent: gone in about 1.5 s
        step("an MQTT 5 client connects with a keepalive of 1 s", "v5-client")
        step("the MQTT 5 client misses its keepalive", "v5-client")
        v5.close()
        first = connect(port, "twin", V5)
        step("an MQTT 5 client connects as twin", "twin")
        second = connect(port, "twin", V5)
        step("another MQTT 5 client takes over the id twin", "twin", 2)
        steps[-1].note = f"the first connection received {_describe(read_packet(first))}"
        first.close()
        disconnect(second)
        step("twin disconnects cleanly", "twin")
        stop_bridge = start_bridge("bridge-b")
        step("another broker's bridge connects", "bridge-b")
        stop_bridge()
        step("the other broker stops", "bridge-b")
    finally:
        recorder.stop()
    return steps


def _describe(packet: tuple[int, bytes] | None) -> str:
    if packet is None:
        return "nothing, the connection was closed"
    kind, body = packet
    if kind == 0xE0 and body:
        return f"DISCONNECT reason 0x{body[0]:02X}"
    return f"packet 0x{kind:02X} {body.hex()}"


def takeover_notice(steps: list[Step]) -> str:
    """What the first ``twin`` connection received when it was taken over."""
    step = next(s for s in steps if s.name == "another MQTT 5 client takes over the id twin")
    return step.note


def record(workdir: Path) -> dict[str, Any]:
    """Play the scenario on the broker under test (MOSQUITTO_BIN) and return the recording."""
    from tests.helpers import free_port, start_mosquitto
    from tests.mosquitto_bin import VERSION_TEXT

    broker = start_mosquitto(workdir)

    def start_bridge(client_id: str) -> Any:
        extra = (
            f"connection to-main\naddress 127.0.0.1:{broker.port}\nremote_clientid {client_id}\n"
            "topic bridged/# out 0\ncleansession true\n"
        )
        other = start_mosquitto(workdir, free_port(), extra)
        return other.stop

    try:
        steps = play(broker.port, start_bridge)
    finally:
        broker.stop()
    return {
        "mosquitto": VERSION_TEXT,
        "recorded_with": "python -m tests.mosquitto_recordings",
        "steps": [{"name": s.name, "lines": s.lines, **({"note": s.note} if s.note else {})} for s in steps],
    }


def record_list_clients(workdir: Path) -> dict[str, Any]:
    """The plugin's ``listClients`` (verbose) answer while two clients of one account are connected."""
    from tests.helpers import DYNSEC_BRIDGE_PASSWORD, DYNSEC_BRIDGE_USER, DynsecMosquitto
    from tests.mosquitto_bin import VERSION_TEXT

    broker = DynsecMosquitto(workdir)
    broker.start()
    devices: list[socket.socket] = []
    answers: list[dict[str, Any]] = []
    answered = threading.Event()
    admin = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="recorder", protocol=mqtt.MQTTv5)
    try:
        broker.ctrl("createClient", "sensor-user", "-p", "sensor-password")
        devices = [connect(broker.port, name, V311, username="sensor-user", password="sensor-password")
                   for name in ("sensor-a", "sensor-b")]  # fmt: skip
        admin.username_pw_set(DYNSEC_BRIDGE_USER, DYNSEC_BRIDGE_PASSWORD)
        admin.on_message = lambda client, userdata, message: (
            answers.append(json.loads(message.payload)),
            answered.set(),
        )
        subscribed = threading.Event()
        admin.on_subscribe = lambda *args: subscribed.set()
        admin.connect("127.0.0.1", broker.port)
        admin.loop_start()
        admin.subscribe("$CONTROL/dynamic-security/v1/response")
        if not subscribed.wait(10):
            raise AssertionError("could not subscribe to the plugin's answers")
        command = {"command": "listClients", "verbose": True, "correlationData": "recording"}
        admin.publish("$CONTROL/dynamic-security/v1", json.dumps({"commands": [command]}), qos=1)
        if not answered.wait(10):
            raise AssertionError("the plugin did not answer listClients")
    finally:
        admin.disconnect()
        admin.loop_stop()
        for device in devices:
            device.close()
        broker.stop()
    return {
        "mosquitto": VERSION_TEXT,
        "recorded_with": "python -m tests.mosquitto_recordings",
        "connected": f"sensor-a and sensor-b as sensor-user, the recorder as {DYNSEC_BRIDGE_USER}",
        "response": answers[0]["responses"][0],
    }


def main() -> int:
    RECORDINGS.mkdir(parents=True, exist_ok=True)
    for kind, make in (("log", record), ("list-clients", record_list_clients)):
        with tempfile.TemporaryDirectory() as folder:
            recording = make(Path(folder))
        target = RECORDINGS / f"{kind}-{recording['mosquitto']}.json"
        target.write_text(json.dumps(recording, indent=2, ensure_ascii=False) + "\n")
        print(f"recorded {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
