"""The client list from mosquitto's log lines: recordings of real 2.0.11 and 2.1.2 brokers playing
the same scenario (tests/mosquitto_recordings.py), every wording either version has, odd ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.insight.clients import ClientTracker
from tests.mosquitto_recordings import EXPECTED

LOG = "$SYS/broker/log/N"
RECORDINGS = sorted((Path(__file__).parent / "mosquitto_recordings").glob("log-*.json"))


def _log(tracker: ClientTracker, line: str, now: float = 1.0) -> bool:
    return tracker.update(LOG, line.encode(), now)


def _recording(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def test_there_are_recordings_of_both_broker_lines() -> None:
    versions = {_recording(p)["mosquitto"].rsplit(".", 1)[0] for p in RECORDINGS}
    assert {"2.0", "2.1"} <= versions


@pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem.removeprefix("log-") for p in RECORDINGS])
def test_each_recorded_step_leaves_the_list_the_scenario_expects(path: Path) -> None:
    recording = _recording(path)
    tracker = ClientTracker()
    assert [step["name"] for step in recording["steps"]] == list(EXPECTED)
    for step in recording["steps"]:
        for line in step["lines"]:
            tracker.update(LOG, line.encode(), 1.0)
        listed = {c["client_id"]: (c["protocol"], c["username"]) for c in tracker.snapshot()}
        assert listed == EXPECTED[step["name"]], f"{recording['mosquitto']}: after {step['name']!r}"


@pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem.removeprefix("log-") for p in RECORDINGS])
def test_a_bridge_is_listed_as_one(path: Path) -> None:
    step = next(s for s in _recording(path)["steps"] if s["name"] == "another broker's bridge connects")
    tracker = ClientTracker()
    for line in step["lines"]:
        tracker.update(LOG, line.encode(), 1.0)
    (entry,) = tracker.snapshot()
    assert (entry["client_id"], entry["bridge"], entry["protocol"]) == ("bridge-b", True, "MQTT 3.1.1")


def test_the_same_client_reads_the_same_on_both_lines() -> None:
    """p2 (2.0) and p4 (2.1) are both MQTT 3.1.1; p1 and p3 both 3.1; the entry is otherwise equal."""
    by_version = {}
    for path in RECORDINGS:
        tracker = ClientTracker()
        for line in _recording(path)["steps"][0]["lines"]:
            tracker.update(LOG, line.encode(), 7.0)
        (entry,) = tracker.snapshot()
        entry.pop("address")  # another port each run
        by_version[path.stem] = entry
    first, *_, last = by_version.values()
    assert (
        first
        == last
        == {
            "client_id": "v31-client",
            "username": "alice",
            "protocol": "MQTT 3.1",
            "keepalive": 60,
            "connected_at": 7.0,
            "bridge": False,
            "broker_confirmed": None,
        }
    )


def test_connect_with_username_and_disconnect() -> None:
    tracker = ClientTracker()
    assert _log(
        tracker,
        "1795351147: New client connected from 127.0.0.1:53370 as dev-1 (p2, c1, k60, u'alice').",
        5.0,
    )
    assert tracker.snapshot() == [
        {
            "client_id": "dev-1",
            "address": "127.0.0.1:53370",
            "username": "alice",
            "protocol": "MQTT 3.1.1",
            "keepalive": 60,
            "connected_at": 5.0,
            "bridge": False,
            "broker_confirmed": None,
        }
    ]
    assert _log(tracker, "1795351147: Client dev-1 disconnected.")
    assert tracker.snapshot() == []


# Every ending each line can log, from the format strings of Debian's 2.0.11 binary and of
# mosquitto 2.1.2's src/loop.c (do_disconnect).
ENDINGS_2_0 = [
    "disconnected.",
    "disconnected: Connection reset by peer.",
    "disconnected due to malformed packet.",
    "disconnected due to protocol error.",
    "closed its connection.",
    "disconnected, not authorised.",
    "has exceeded timeout, disconnecting.",
    "disconnected due to oversize packet.",
    "disconnected due to QoS too high or retain not supported.",
    "been disconnected by administrative action.",
]
REASONS_2_1 = [
    "malformed packet.",
    "protocol error.",
    "connection closed by client.",
    "not authorised.",
    "exceeded timeout.",
    "oversize packet.",
    "oversize payload.",
    "out of memory.",
    "used disallowed feature (QoS too high, retain not supported, or bad AUTH method).",
    "administrative action.",
    "Connection reset by peer.",
    "receive maximum exceeded.",
    "session taken over.",
    "topic alias invalid.",
    "non-matching http origin.",
    "bad socket read/write: The connection was lost",  # mosquitto_strerror: no full stop
]


@pytest.mark.parametrize(
    "ending",
    [
        *ENDINGS_2_0,
        "[10.0.0.2:1234] disconnected.",
        *[f"[10.0.0.2:1234] disconnected: {r}" for r in REASONS_2_1],
    ],
)
def test_every_way_of_leaving_removes_the_client(ending: str) -> None:
    tracker = ClientTracker()
    _log(tracker, "New client connected from 10.0.0.2:1234 as my client (p4, c0, k30).")
    assert len(tracker) == 1
    assert _log(tracker, f"1: Client my client {ending}"), ending
    assert len(tracker) == 0, ending


def test_a_line_about_another_connection_of_the_same_id_keeps_the_client() -> None:
    """2.1 names the connection: the line about the old one (taken over, say) is not about the new."""
    tracker = ClientTracker()
    _log(tracker, "New client connected from 10.0.0.2:2000 as dup (p5, c1, k60).")
    assert not _log(tracker, "Client dup [10.0.0.1:1000] disconnected: session taken over.")
    assert [c["address"] for c in tracker.snapshot()] == ["10.0.0.2:2000"]


def test_a_restored_entry_leaves_whatever_address_the_line_names() -> None:
    """Taken up from Redis, an entry may be an older connection than the one that now leaves."""
    tracker = ClientTracker()
    tracker.restore([{"client_id": "dup", "address": "10.0.0.1:1000", "username": None, "protocol": "MQTT 5",
                      "keepalive": 60, "connected_at": 1.0}])  # fmt: skip
    assert _log(tracker, "Client dup [10.0.0.9:3000] disconnected: connection closed by client.")
    assert len(tracker) == 0


def test_a_list_published_before_the_protocol_names_reads_as_today() -> None:
    tracker = ClientTracker()
    old = {"address": "a:1", "username": None, "keepalive": 60, "connected_at": 1.0}
    tracker.restore(
        [{**old, "client_id": "x", "protocol": "p4"}, {**old, "client_id": "y", "protocol": "MQTT 5.0"}]
    )
    assert [c["protocol"] for c in tracker.snapshot()] == ["MQTT 3.1.1", "MQTT 5"]


def test_mqtt5_client_without_username() -> None:
    tracker = ClientTracker()
    _log(tracker, "1795351147: New client connected from 127.0.0.1:53372 as dev-2 (p5, c1, k60).")
    (client,) = tracker.snapshot()
    assert (client["protocol"], client["username"]) == ("MQTT 5", None)


def test_ipv6_addresses_and_unusual_ids() -> None:
    tracker = ClientTracker()
    _log(tracker, "New client connected from ::1:41000 as auto-3F2A (p4, c1, k0, u'we ird').")
    (client,) = tracker.snapshot()
    assert (client["address"], client["client_id"], client["username"]) == (
        "::1:41000",
        "auto-3F2A",
        "we ird",
    )
    assert _log(tracker, "Client auto-3F2A [::1:41000] disconnected.")


def test_noise_is_ignored() -> None:
    tracker = ClientTracker()
    for line in ["New connection from 127.0.0.1:5 on port 1883.", "garbage", "", "Client x disconnected."]:
        assert _log(tracker, line) is False
    assert tracker.update(LOG, b"\xff\xfe\x00", 1.0) is False
    assert (
        tracker.update("$SYS/broker/uptime", b"New client connected from a as b (p2, c1, k1).", 1.0) is False
    )


def test_takeover_by_same_id_keeps_one_entry() -> None:
    tracker = ClientTracker()
    _log(tracker, "New client connected from 1.1.1.1:1 as dup (p2, c1, k60).")
    _log(tracker, "Client dup already connected, closing old connection.")
    _log(tracker, "New client connected from 2.2.2.2:2 as dup (p2, c1, k60).")
    assert [c["address"] for c in tracker.snapshot()] == ["2.2.2.2:2"]


# --- issue 11, point 7: an id that looks like a log line cannot remove another client ---------------
@pytest.mark.parametrize(
    "attacker",
    ["victim disconnected", "victim closed its connection", "victim [1.2.3.4:5]", "victim disconnected, x"],
)
def test_a_client_id_that_spells_a_log_ending_does_not_drop_another_client(attacker: str) -> None:
    tracker = ClientTracker()
    _log(tracker, "New client connected from 10.0.0.1:1 as victim (p2, c1, k60).")
    _log(tracker, f"New client connected from 10.0.0.2:2 as {attacker} (p2, c1, k60).")

    assert _log(tracker, f"Client {attacker} disconnected.")

    assert [c["client_id"] for c in tracker.snapshot()] == ["victim"]
    assert _log(tracker, "Client victim disconnected.")
    assert tracker.snapshot() == []


@pytest.mark.parametrize(
    "attacker",
    ["victim [10.0.0.1:1] disconnected: x", "victim [10.0.0.1:1] disconnected.", "victim [10.0.0.1:1]"],
)
def test_a_refused_client_whose_id_spells_a_2_1_line_does_not_drop_another(attacker: str) -> None:
    """Refused at login, the attacker is never listed, but 2.1 still logs its disconnect with its id."""
    tracker = ClientTracker()
    _log(tracker, "New client connected from 10.0.0.1:1 as victim (p4, c1, k60).")

    assert not _log(tracker, f"Client {attacker} [6.6.6.6:6] disconnected: not authorised.")

    assert [c["client_id"] for c in tracker.snapshot()] == ["victim"]
