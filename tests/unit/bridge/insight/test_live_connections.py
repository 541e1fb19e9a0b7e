"""Which client-list entries the broker confirms, from the dynamic-security plugin's listClients
answers recorded on mosquitto 2.0.11 and 2.1.2 (tests/mosquitto_recordings.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bridge.insight.clients import ClientTracker
from bridge.insight.live_connections import LiveConnections, from_list_clients, host_of

HERE = Path(__file__).parent / "mosquitto_recordings"
LOG = "$SYS/broker/log/N"


def _answer(version: str) -> dict[str, Any]:
    return dict(json.loads((HERE / f"list-clients-{version}.json").read_text())["response"])


def _tracker_with(*lines: str, at: float = 10.0) -> ClientTracker:
    tracker = ClientTracker()
    for line in lines:
        tracker.update(LOG, line.encode(), at)
    return tracker


def _confirmed(tracker: ClientTracker) -> dict[str, bool | None]:
    return {c["client_id"]: c["broker_confirmed"] for c in tracker.snapshot()}


SENSORS = (
    "New client connected from 127.0.0.1:40001 as sensor-a (p4, c1, k60, u'sensor-user').",
    "New client connected from 127.0.0.1:40002 as sensor-b (p4, c1, k60, u'sensor-user').",
)


def test_on_2_1_the_entries_the_broker_reports_are_confirmed() -> None:
    live = from_list_clients(_answer("2.1.2"), asked_at=20.0)
    assert isinstance(live, LiveConnections)
    tracker = _tracker_with(*SENSORS)

    assert tracker.confirm(live)

    assert _confirmed(tracker) == {"sensor-a": True, "sensor-b": True}


def test_a_log_line_the_broker_does_not_back_is_marked_unconfirmed() -> None:
    """A third sensor-user connection (a line spelled by someone, or a client long gone) is one
    more than the plugin reports, and an account's connection from elsewhere is none of its."""
    live = from_list_clients(_answer("2.1.2"), asked_at=20.0)
    assert isinstance(live, LiveConnections)
    tracker = _tracker_with(
        *SENSORS,
        "New client connected from 127.0.0.1:40003 as sensor-c (p4, c1, k60, u'sensor-user').",
        "New client connected from 10.9.9.9:5000 as not-the-bridge (p5, c1, k60, u'mqtt-bridge').",
        at=10.0,
    )
    tracker.confirm(live)

    confirmed = _confirmed(tracker)
    assert sorted(confirmed.values(), key=str) == [
        False,
        False,
        True,
        True,
    ]  # one of the three sensors is not
    assert confirmed["not-the-bridge"] is False


def test_what_the_broker_cannot_know_stays_open() -> None:
    live = from_list_clients(_answer("2.1.2"), asked_at=20.0)
    assert isinstance(live, LiveConnections)
    tracker = _tracker_with(
        "New client connected from 127.0.0.1:40009 as anonymous-one (p4, c1, k60).",
        "New client connected from 127.0.0.1:40010 as other-plugin (p4, c1, k60, u'someone-else').",
    )
    tracker.update(LOG, SENSORS[0].encode(), 30.0)  # connected after the question was asked
    tracker.confirm(live)

    assert _confirmed(tracker) == {"anonymous-one": None, "other-plugin": None, "sensor-a": None}


def test_on_2_0_the_plugin_reports_no_connections_and_says_so() -> None:
    why = from_list_clients(_answer("2.0.11"), asked_at=20.0)
    assert isinstance(why, str) and "does not report connections" in why
    tracker = _tracker_with(*SENSORS)
    assert not tracker.confirm(None)
    assert _confirmed(tracker) == {"sensor-a": None, "sensor-b": None}


def test_a_refusal_or_a_strange_answer_is_a_sentence() -> None:
    assert from_list_clients({"command": "listClients", "error": "Permission denied"}, 1.0) == (
        "the broker refused listClients: Permission denied"
    )
    assert "no client list" in str(from_list_clients({"command": "listClients", "data": "x"}, 1.0))


def test_addresses_are_compared_without_their_port() -> None:
    assert [host_of(a) for a in ("10.0.0.5:52144", "::1:41000", "[::1]:41000", "host")] == [
        "10.0.0.5",
        "::1",
        "::1",
        "host",
    ]
