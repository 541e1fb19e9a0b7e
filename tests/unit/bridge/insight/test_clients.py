"""The client list from mosquitto 2.0 log lines (captured from a real broker, plus odd ones)."""

from __future__ import annotations

import pytest

from bridge.insight.clients import ClientTracker

LOG = "$SYS/broker/log/N"


def _log(tracker: ClientTracker, line: str, now: float = 1.0) -> bool:
    return tracker.update(LOG, line.encode(), now)


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
        }
    ]
    assert _log(tracker, "1795351147: Client dev-1 disconnected.")
    assert tracker.snapshot() == []


def test_mqtt5_client_without_username() -> None:
    tracker = ClientTracker()
    _log(tracker, "1795351147: New client connected from 127.0.0.1:53372 as dev-2 (p5, c1, k60).")
    (client,) = tracker.snapshot()
    assert (client["protocol"], client["username"]) == ("MQTT 5.0", None)


def test_every_way_of_leaving_removes_the_client() -> None:
    endings = [
        "Client {} closed its connection.",
        "Client {} has exceeded timeout, disconnecting.",
        "Client {} disconnected due to protocol error.",
        "Socket error on client {}, disconnecting.",
        "Client {} [10.0.0.2:1234] disconnected.",
        "Client {} disconnected.",
    ]
    for ending in endings:
        tracker = ClientTracker()
        _log(tracker, "New client connected from ::1:1 as my client (p2, c0, k30).")
        assert len(tracker) == 1
        assert _log(tracker, "1: " + ending.format("my client")), ending
        assert len(tracker) == 0, ending


def test_ipv6_addresses_and_unusual_ids() -> None:
    tracker = ClientTracker()
    _log(tracker, "New client connected from [::1]:41000 as auto-3F2A (p2, c1, k0, u'we ird').")
    (client,) = tracker.snapshot()
    assert (client["address"], client["client_id"], client["username"]) == (
        "[::1]:41000",
        "auto-3F2A",
        "we ird",
    )


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
