"""Demo sensors for ``mqtt-redis-bridge demo``: simulated devices that give every dashboard panel data.

Two halves: the devices (pure payload generation, seeded, no sockets; what the unit tests check)
and the runner that gives each device its own MQTT connection, retained status and last will.

Topic tree (prefix ``demo``)::

    demo/building-1/floor-2/room-3/climate-1/telemetry   JSON temperature, humidity, battery
    demo/building-1/floor-2/room-4/climate-2/telemetry   JSON, a second room
    demo/building-1/floor-0/utility/meter-1/telemetry    JSON power, voltage, current, energy
    demo/building-1/floor-0/utility/meter-1/energy_kwh   plain text number
    demo/building-1/floor-0/entrance/door-1/state        JSON, retained, on change
    demo/building-1/floor-2/room-3/camera-1/snapshot     binary (a small PNG) every 10 s
    demo/building-1/floor-3/lab/freezer-1/telemetry      JSON; connects and disconnects every ~20 s
    <each device>/status                                  "online" / "offline", retained, last will
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import signal
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

logger = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
CAMERA_PERIOD = 10.0  # seconds between snapshots
DOOR_CHECK_PERIOD = 1.0  # seconds between door checks; it changes state every ~15 s on average
FLAKY_ONLINE = 20.0  # seconds the flaky device stays connected (+-20 %)
FLAKY_OFFLINE = 8.0  # seconds it stays away (+-25 %)
# MQTT 5 reason code 0x04: close the connection and have the broker publish the last will,
# as it would for a device that lost power.
DISCONNECT_WITH_WILL = ReasonCode(PacketTypes.DISCONNECT, identifier=4)


@dataclass(frozen=True)
class Publication:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class Device:
    """A simulated device: a client id, a base topic, and readings produced by ``tick``."""

    flaky = False

    def __init__(self, name: str, base_topic: str, period: float, rng: random.Random):
        self.name = name
        self.base_topic = base_topic
        self.period = period
        self.rng = rng

    @property
    def status_topic(self) -> str:
        return f"{self.base_topic}/status"

    def on_connect(self, now: float) -> list[Publication]:
        """What the device sends right after (re)connecting, besides its ``online`` status."""
        return []

    def tick(self, now: float) -> list[Publication]:
        raise NotImplementedError

    def _walk(self, value: float, step: float, low: float, high: float) -> float:
        return min(high, max(low, value + self.rng.uniform(-step, step)))


class ClimateSensor(Device):
    """Battery-powered room sensor: temperature, humidity, battery, radio signal."""

    def __init__(self, name: str, base_topic: str, period: float, rng: random.Random):
        super().__init__(name, base_topic, period, rng)
        self.temperature = rng.uniform(19.5, 23.0)
        self.humidity = rng.uniform(35.0, 50.0)
        self.battery = rng.uniform(60.0, 100.0)

    def tick(self, now: float) -> list[Publication]:
        self.temperature = self._walk(self.temperature, 0.15, 16.0, 28.0)
        self.humidity = self._walk(self.humidity, 0.4, 20.0, 70.0)
        self.battery = max(1.0, self.battery - 0.005)
        reading = {
            "temperature": round(self.temperature, 1),
            "humidity": round(self.humidity, 1),
            "battery": int(self.battery),
            "rssi": self.rng.randint(-82, -48),
            "ts": round(now, 3),
        }
        return [Publication(f"{self.base_topic}/telemetry", _json(reading))]


class PowerMeter(Device):
    """Mains-powered meter: JSON telemetry plus the energy total as a plain-text number."""

    def __init__(self, name: str, base_topic: str, period: float, rng: random.Random):
        super().__init__(name, base_topic, period, rng)
        self.energy_kwh = rng.uniform(1000.0, 5000.0)
        self.last: float | None = None

    def tick(self, now: float) -> list[Publication]:
        power = 1200.0 + 600.0 * math.sin(now / 60.0) + self.rng.uniform(-80.0, 80.0)
        voltage = 230.0 + self.rng.uniform(-2.5, 2.5)
        if self.last is not None:
            self.energy_kwh += power * max(0.0, now - self.last) / 3_600_000.0
        self.last = now
        reading = {
            "power_w": round(power, 1),
            "voltage_v": round(voltage, 1),
            "current_a": round(power / voltage, 2),
            "energy_kwh": round(self.energy_kwh, 3),
            "ts": round(now, 3),
        }
        return [
            Publication(f"{self.base_topic}/telemetry", _json(reading)),
            Publication(f"{self.base_topic}/energy_kwh", f"{self.energy_kwh:.3f}".encode()),
        ]


class DoorSensor(Device):
    """Reports open/closed when it changes, retained at QoS 1 so a new subscriber knows the state."""

    def __init__(self, name: str, base_topic: str, period: float, rng: random.Random):
        super().__init__(name, base_topic, period, rng)
        self.open = False
        self.changed_at = time.time()
        self.battery = rng.randint(70, 100)

    def state(self) -> Publication:
        body = {"open": self.open, "battery": self.battery, "changed_at": round(self.changed_at, 3)}
        return Publication(f"{self.base_topic}/state", _json(body), qos=1, retain=True)

    def on_connect(self, now: float) -> list[Publication]:
        return [self.state()]

    def tick(self, now: float) -> list[Publication]:
        if self.rng.random() >= self.period / 15.0:
            return []
        self.open = not self.open
        self.changed_at = now
        return [self.state()]


class Camera(Device):
    """Sends a tiny PNG snapshot: binary, and never valid UTF-8 (the PNG signature starts 0x89)."""

    def __init__(self, name: str, base_topic: str, period: float, rng: random.Random):
        super().__init__(name, base_topic, period, rng)
        self.frame = 0

    def tick(self, now: float) -> list[Publication]:
        self.frame += 1
        return [Publication(f"{self.base_topic}/snapshot", snapshot_png(self.frame, self.rng))]


class Freezer(ClimateSensor):
    """A lab freezer on bad Wi-Fi: the runner connects and drops it every ~20 s."""

    flaky = True

    def __init__(self, name: str, base_topic: str, period: float, rng: random.Random):
        super().__init__(name, base_topic, period, rng)
        self.temperature = rng.uniform(-19.0, -17.0)

    def tick(self, now: float) -> list[Publication]:
        self.temperature = self._walk(self.temperature, 0.2, -24.0, -14.0)
        reading = {
            "temperature": round(self.temperature, 1),
            "compressor": "on" if self.temperature > -18.0 else "off",
            "ts": round(now, 3),
        }
        return [Publication(f"{self.base_topic}/telemetry", _json(reading))]


def snapshot_png(frame: int, rng: random.Random, width: int = 16, height: int = 12) -> bytes:
    """A valid RGB PNG: a gradient that moves with ``frame``, plus a little noise."""
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter type "none" for this scanline
        for x in range(width):
            shade = (x * 16 + y * 8 + frame * 12) % 256
            row += bytes((shade, (shade + rng.randint(0, 40)) % 256, 255 - shade))
        rows.append(bytes(row))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def build_devices(prefix: str = "demo", rate: float = 2.0, rng: random.Random | None = None) -> list[Device]:
    """The demo's devices; ``rate`` is readings per second from each sensor."""
    if rate <= 0:
        raise ValueError("rate must be above 0")
    rng = rng or random.Random()
    period = 1.0 / rate
    site = f"{prefix.strip('/')}/building-1"
    return [
        ClimateSensor("climate-1", f"{site}/floor-2/room-3/climate-1", period, rng),
        ClimateSensor("climate-2", f"{site}/floor-2/room-4/climate-2", period, rng),
        PowerMeter("meter-1", f"{site}/floor-0/utility/meter-1", period, rng),
        DoorSensor("door-1", f"{site}/floor-0/entrance/door-1", DOOR_CHECK_PERIOD, rng),
        Camera("camera-1", f"{site}/floor-2/room-3/camera-1", CAMERA_PERIOD, rng),
        Freezer("freezer-1", f"{site}/floor-3/lab/freezer-1", period, rng),
    ]


# --- the runner: one MQTT connection per device ----------------------------------------------


class _Link:
    """One device's connection. paho's network thread runs the callbacks; the runner calls the rest."""

    def __init__(
        self, device: Device, client_id: str, host: str, port: int, auth: tuple[str, str | None] | None
    ):
        self.device = device
        self.client_id = client_id
        self.host, self.port, self.auth = host, port, auth
        self.fresh = threading.Event()  # set on each connect: the runner sends a reading at once
        self.next_due = math.inf
        self.switch_at = math.inf  # flaky device: when to drop or come back
        self.client: mqtt.Client | None = None

    def _new_client(self) -> mqtt.Client:
        # A new client for every connection: paho leaks a socket pair when one client's network
        # thread is started a second time.
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if self.auth is not None:
            client.username_pw_set(*self.auth)
        client.will_set(self.device.status_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(1, 10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.warning("demo device %s: broker refused the connection: %s", self.device.name, reason)
            return
        logger.info("demo device %s connected", self.device.name)
        client.publish(self.device.status_topic, ONLINE, qos=1, retain=True)
        for pub in self.device.on_connect(time.time()):
            client.publish(pub.topic, pub.payload, pub.qos, pub.retain)
        self.fresh.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        logger.info("demo device %s disconnected (%s)", self.device.name, reason)

    @property
    def up(self) -> bool:
        return self.client is not None

    def open(self) -> None:
        self.client = self._new_client()
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def publish(self, pubs: list[Publication]) -> None:
        if self.client is not None and self.client.is_connected():
            for pub in pubs:
                self.client.publish(pub.topic, pub.payload, pub.qos, pub.retain)

    def drop(self) -> None:
        """Vanish as a device losing power would: the broker publishes the last will (offline)."""
        if self.client is not None:
            self.client.disconnect(reasoncode=DISCONNECT_WITH_WILL)
            self.client.loop_stop()
            self.client = None

    def close(self) -> None:
        """Leave politely: publish ``offline`` ourselves, then disconnect (no will)."""
        if self.client is None:
            return
        if self.client.is_connected():
            info = self.client.publish(self.device.status_topic, OFFLINE, qos=1, retain=True)
            # If the connection goes away meanwhile, the broker publishes the will instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()
        self.client = None


def _client_id(prefix: str, device: Device) -> str:
    return f"{prefix.strip('/').replace('/', '-')}-{device.name}"


def run_demo(
    host: str,
    port: int,
    *,
    rate: float = 2.0,
    stop: threading.Event | None = None,
    duration: float | None = None,
    prefix: str = "demo",
    username: str | None = None,
    password: str | None = None,
    seed: int | None = None,
    flaky_times: tuple[float, float] = (FLAKY_ONLINE, FLAKY_OFFLINE),
) -> None:
    """Publish demo traffic until ``stop`` is set, ``duration`` seconds pass, Ctrl-C or SIGTERM.

    Blocks. Each device connects on its own (retrying while the broker is away) and starts
    publishing as soon as it is connected. The flaky device stays connected for about
    ``flaky_times[0]`` seconds, then away for about ``flaky_times[1]``.
    """
    rng = random.Random(seed)
    devices = build_devices(prefix, rate, rng)
    auth = (username, password) if username else None
    links = [_Link(d, _client_id(prefix, d), host, port, auth) for d in devices]
    stop = stop or threading.Event()
    restore = _stop_on_sigterm(stop)
    deadline = math.inf if duration is None else time.monotonic() + duration
    logger.info("demo: %d devices publishing under %s/ to %s:%d", len(links), prefix, host, port)
    try:
        for link in links:
            link.open()
            if link.device.flaky:
                link.switch_at = time.monotonic() + flaky_times[0] * rng.uniform(0.8, 1.2)
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            for link in links:
                _step(link, now, rng, flaky_times)
            wake = min([deadline] + [min(link.next_due, link.switch_at) for link in links])
            # Wake at least every 0.25 s to notice links that have just connected.
            stop.wait(min(0.25, max(0.0, wake - time.monotonic())))
    except KeyboardInterrupt:
        logger.info("demo: interrupted")
    finally:
        for link in links:
            link.close()
        restore()
        logger.info("demo: stopped")


def _step(link: _Link, now: float, rng: random.Random, flaky_times: tuple[float, float]) -> None:
    if link.device.flaky and now >= link.switch_at:
        if link.up:
            logger.info("demo device %s: dropping off the network", link.device.name)
            link.drop()
            link.next_due = math.inf
            link.switch_at = now + flaky_times[1] * rng.uniform(0.75, 1.25)
        else:
            link.open()
            link.switch_at = now + flaky_times[0] * rng.uniform(0.8, 1.2)
    if link.fresh.is_set():  # just (re)connected: report at once
        link.fresh.clear()
        link.next_due = now
    if now >= link.next_due:
        link.publish(link.device.tick(time.time()))
        link.next_due = now + link.device.period


def _stop_on_sigterm(stop: threading.Event) -> Any:
    """In the main thread, let SIGTERM end the demo like Ctrl-C; returns a function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
