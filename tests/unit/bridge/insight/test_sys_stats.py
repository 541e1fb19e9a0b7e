"""Parsing of mosquitto 2.0 $SYS topics, on lines captured from a real broker."""

from __future__ import annotations

import pytest

from bridge.insight.sys_stats import SysStats, parse_number

# Captured from mosquitto 2.0.11 (Debian bookworm) with sys_interval 1.
CAPTURED = """\
$SYS/broker/version mosquitto version 2.0.11
$SYS/broker/uptime 126 seconds
$SYS/broker/clients/total 3
$SYS/broker/clients/connected 2
$SYS/broker/clients/active 2
$SYS/broker/clients/disconnected 1
$SYS/broker/clients/maximum 4
$SYS/broker/clients/expired 0
$SYS/broker/messages/stored 35
$SYS/broker/messages/received 1200
$SYS/broker/messages/sent 2400
$SYS/broker/publish/messages/dropped 7
$SYS/broker/bytes/received 120000
$SYS/broker/bytes/sent 240000
$SYS/broker/subscriptions/count 5
$SYS/broker/retained messages/count 40
$SYS/broker/heap/current 33256
$SYS/broker/heap/maximum 34408
$SYS/broker/load/messages/received/1min 55.03
$SYS/broker/load/messages/received/5min 20.10
$SYS/broker/load/messages/received/15min 7.00
$SYS/broker/load/bytes/sent/1min 5000.00
$SYS/broker/load/connections/15min 0.40
$SYS/broker/store/messages/count 35
$SYS/broker/store/messages/bytes 151
$SYS/broker/shared_subscriptions/count 0"""


RETAINED = "$SYS/broker/retained messages/count"  # the one topic with a space in it


def _feed(stats: SysStats, text: str, now: float) -> None:
    for line in text.splitlines():
        if line.startswith(RETAINED):
            topic, payload = RETAINED, line[len(RETAINED) + 1 :]
        else:
            topic, _, payload = line.partition(" ")
        stats.update(topic, payload.encode(), now)


def test_captured_values_become_typed_fields() -> None:
    stats = SysStats()
    _feed(stats, CAPTURED, now=1000.0)
    data = stats.snapshot(now=1000.0)
    assert data["version"] == "2.0.11"
    assert data["uptime_seconds"] == 126
    assert data["clients_connected"] == 2
    assert data["clients_disconnected"] == 1
    assert data["clients_maximum"] == 4
    assert data["publish_dropped"] == 7
    assert data["retained_messages"] == 40
    assert data["subscriptions"] == 5
    assert data["heap_current"] == 33256
    assert data["load"]["messages_received"] == {"1min": 55.03, "5min": 20.1, "15min": 7.0}
    assert data["load"]["bytes_sent"]["1min"] == 5000.0
    assert all(isinstance(data[k], int) for k in ("messages_received", "bytes_sent", "clients_total"))


def test_values_carry_forward_and_rates_come_from_successive_counters() -> None:
    stats = SysStats(stale_after=12)
    stats.update("$SYS/broker/messages/received", b"1000", 100.0)
    assert stats.snapshot(now=100.0)["rates"]["messages_received_per_s"] is None  # one sample: no rate yet
    stats.update("$SYS/broker/messages/received", b"1500", 105.0)
    stats.update("$SYS/broker/uptime", b"200 seconds", 105.0)
    data = stats.snapshot(now=106.0)
    assert data["rates"]["messages_received_per_s"] == 100.0
    assert data["messages_received"] == 1500
    # mosquitto says nothing while a counter does not move: after a while the rate is 0
    assert stats.snapshot(now=120.0)["rates"]["messages_received_per_s"] == 0.0
    assert stats.snapshot(now=120.0)["messages_received"] == 1500


def test_a_counter_going_backwards_means_restart_not_a_negative_rate() -> None:
    stats = SysStats()
    stats.update("$SYS/broker/bytes/sent", b"5000", 1.0)
    stats.update("$SYS/broker/bytes/sent", b"10", 6.0)
    assert stats.snapshot(now=6.0)["rates"]["bytes_sent_per_s"] is None


def test_impossible_negative_disconnected_count_is_ignored() -> None:
    stats = SysStats()
    stats.update("$SYS/broker/clients/disconnected", b"3", 1.0)
    assert stats.update("$SYS/broker/clients/disconnected", b"-1", 2.0) is False
    assert stats.snapshot(now=2.0)["clients_disconnected"] == 3


@pytest.mark.parametrize(
    ("text", "value"), [("123 seconds", 123), ("0.55", 0.55), ("n/a", None), ("", None), ("7", 7)]
)
def test_parse_number(text: str, value: object) -> None:
    assert parse_number(text) == value


def test_unknown_and_garbage_topics_are_ignored() -> None:
    stats = SysStats()
    assert stats.update("$SYS/broker/unknown/thing", b"5", 1.0) is False
    assert stats.update("$SYS/broker/uptime", b"\xff\xfe", 1.0) is False
    assert stats.update("other/topic", b"5", 1.0) is False
    assert "uptime_seconds" not in stats.snapshot(now=1.0)


def _dropped(stats: SysStats, value: int, at: float) -> None:
    stats.update("$SYS/broker/publish/messages/dropped", str(value).encode(), at)


def test_what_the_broker_dropped_in_the_last_minute_is_in_the_snapshot() -> None:
    # Loss at the broker is invisible to the bridge's own counters: the snapshot carries it.
    stats = SysStats()
    _dropped(stats, 500, 0.0)  # the broker's lifetime total when the bridge started watching
    assert stats.snapshot(now=0.0)["publish_dropped_recent"] == 0
    _dropped(stats, 1_500, 10.0)
    _dropped(stats, 4_000, 20.0)
    snap = stats.snapshot(now=20.0)
    assert snap["publish_dropped_recent"] == 3_500 and snap["rates"]["publish_dropped_per_s"] == 250.0
    # mosquitto sends nothing while the counter stays put: a minute later the window is empty
    assert stats.snapshot(now=65.0)["publish_dropped_recent"] == 3_500  # from 500, its value at 5 s
    assert stats.snapshot(now=81.0)["publish_dropped_recent"] == 0
    _dropped(stats, 4_010, 90.0)
    assert stats.snapshot(now=90.0)["publish_dropped_recent"] == 10


def test_a_broker_restart_starts_the_drop_window_again() -> None:
    stats = SysStats()
    _dropped(stats, 9_000, 0.0)
    _dropped(stats, 3, 5.0)  # restarted: its counter began again
    assert stats.snapshot(now=5.0)["publish_dropped_recent"] == 0
    _dropped(stats, 10, 6.0)
    assert stats.snapshot(now=6.0)["publish_dropped_recent"] == 7


def test_without_drop_figures_there_is_no_recent_count() -> None:
    assert "publish_dropped_recent" not in SysStats().snapshot(now=1.0)
