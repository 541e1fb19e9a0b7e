"""The demo devices' payloads: shapes a dashboard can show, without any broker."""

from __future__ import annotations

import itertools
import json
import random
import struct
import zlib

import pytest

from bridge.demo import (
    Camera,
    ClimateSensor,
    DoorSensor,
    Freezer,
    PowerMeter,
    build_devices,
    snapshot_png,
)

NOW = 1_700_000_000.0


def devices_by_type(prefix: str = "demo") -> dict[type, list]:
    found: dict[type, list] = {}
    for device in build_devices(prefix, rate=2.0, rng=random.Random(7)):
        found.setdefault(type(device), []).append(device)
    return found


def test_topic_tree_client_names_and_status_topics_are_distinct() -> None:
    devices = build_devices("demo", rng=random.Random(1))
    assert len({d.name for d in devices}) == len(devices)
    assert len({d.status_topic for d in devices}) == len(devices)
    assert all(d.base_topic.startswith("demo/building-1/floor-") for d in devices)
    assert all(d.status_topic == f"{d.base_topic}/status" for d in devices)
    assert sum(d.flaky for d in devices) == 1


def test_prefix_moves_the_whole_tree() -> None:
    devices = build_devices("test-7/site", rng=random.Random(1))
    assert all(d.base_topic.startswith("test-7/site/building-1/") for d in devices)


def test_climate_telemetry_is_json_with_plausible_values() -> None:
    sensor = devices_by_type()[ClimateSensor][0]
    readings = [json.loads(sensor.tick(NOW + i)[0].payload) for i in range(200)]
    for reading in readings:
        assert set(reading) == {"temperature", "humidity", "battery", "rssi", "ts"}
        assert 16.0 <= reading["temperature"] <= 28.0
        assert 20.0 <= reading["humidity"] <= 70.0
        assert isinstance(reading["battery"], int) and 1 <= reading["battery"] <= 100
    assert len({r["temperature"] for r in readings}) > 5  # it moves
    pub = sensor.tick(NOW)[0]
    assert pub.topic == f"{sensor.base_topic}/telemetry"
    assert (pub.qos, pub.retain) == (0, False)


def test_power_meter_sends_json_and_a_plain_number_and_energy_only_grows() -> None:
    meter = devices_by_type()[PowerMeter][0]
    totals = []
    for i in range(20):
        telemetry, energy = meter.tick(NOW + i)
        reading = json.loads(telemetry.payload)
        assert reading["current_a"] == pytest.approx(reading["power_w"] / reading["voltage_v"], abs=0.01)
        totals.append(float(energy.payload.decode()))
        assert energy.topic.endswith("/energy_kwh")
    assert totals == sorted(totals) and totals[-1] > totals[0]


def test_door_state_is_retained_qos1_and_only_sent_on_change() -> None:
    door = devices_by_type()[DoorSensor][0]
    (first,) = door.on_connect(NOW)
    assert (first.qos, first.retain) == (1, True)
    assert json.loads(first.payload)["open"] is False
    states = [json.loads(p.payload)["open"] for i in range(600) for p in door.tick(NOW + i)]
    assert 10 < len(states) < 120  # about one change every 15 s
    assert all(a != b for a, b in itertools.pairwise(states))  # each one is a change


def test_camera_snapshot_is_a_valid_png_that_is_not_utf8() -> None:
    camera = devices_by_type()[Camera][0]
    (pub,) = camera.tick(NOW)
    assert pub.topic.endswith("/snapshot")
    with pytest.raises(UnicodeDecodeError):
        pub.payload.decode("utf-8")
    png = pub.payload
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (16, 12)
    idat_length = struct.unpack(">I", png[33:37])[0]
    assert png[37:41] == b"IDAT"
    assert len(zlib.decompress(png[41 : 41 + idat_length])) == height * (1 + width * 3)


def test_snapshots_change_from_frame_to_frame() -> None:
    rng = random.Random(3)
    assert snapshot_png(1, rng) != snapshot_png(2, rng)


def test_freezer_is_the_flaky_one_and_stays_cold() -> None:
    freezer = devices_by_type()[Freezer][0]
    assert freezer.flaky
    for i in range(100):
        reading = json.loads(freezer.tick(NOW + i)[0].payload)
        assert -24.0 <= reading["temperature"] <= -14.0
        assert reading["compressor"] in ("on", "off")


def test_same_seed_gives_the_same_readings() -> None:
    def first_readings(seed: int) -> list[bytes]:
        return [p.payload for d in build_devices(rng=random.Random(seed)) for p in d.tick(NOW)]

    assert first_readings(5) == first_readings(5)
    assert first_readings(5) != first_readings(6)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        build_devices(rate=0)
