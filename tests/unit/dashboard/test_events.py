"""Socket.IO: the snapshot on connect, filters, and what the relay's steps send to browsers."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from flask import Flask

from bridge.contract.protocol import (
    CHANNEL_CLIENTS,
    CHANNEL_MESSAGES,
    CHANNEL_STATS,
    CHANNEL_STATUS,
    CHANNEL_TOPICS,
    KEY_STATS_LATEST,
    KEY_STATUS_LATEST,
    dumps,
    envelope,
)
from dashboard.extensions import Services, services
from tests.unit.dashboard.fakes import TOKEN, add_history, message, received, set_heartbeat, socket_client

AUTH = {"token": TOKEN}


def test_the_snapshot_holds_what_a_new_page_needs(app: Flask, redis_client: fakeredis.FakeRedis) -> None:
    status = envelope("status_change", connected=True, broker="localhost:1883")
    stats = envelope("stats_update", data={"clients_connected": 3})
    redis_client.set(KEY_STATUS_LATEST, dumps(status))
    redis_client.set(KEY_STATS_LATEST, dumps(stats))
    set_heartbeat(redis_client, age=2.0)
    for n in range(5):
        add_history(redis_client, f"t/{n}")

    (snap,) = received(socket_client(app, auth=AUTH))["snapshot"]

    assert snap["worker"] == os.getpid()
    assert snap["auth"] == "token"
    assert snap["status"] == status
    assert snap["stats"] == stats
    assert snap["clients"] is None and snap["topics"] is None
    assert snap["bridge"]["online"] is True
    assert snap["bridge"]["pid"] == 4242
    assert 1.5 < snap["bridge"]["heartbeat_age"] < 10
    # DASHBOARD_HISTORY_ON_CONNECT=3 in these tests: the newest three, oldest first.
    assert [m["topic"] for m in snap["messages"]] == ["t/2", "t/3", "t/4"]


def test_a_stale_heartbeat_shows_the_bridge_offline(app: Flask, redis_client: fakeredis.FakeRedis) -> None:
    set_heartbeat(redis_client, age=60.0)

    (snap,) = received(socket_client(app, auth=AUTH))["snapshot"]

    assert snap["bridge"]["online"] is False


def test_with_redis_down_a_browser_still_connects_and_sees_why(
    app: Flask, redis_server: fakeredis.FakeServer
) -> None:
    redis_server.connected = False

    sio = socket_client(app, auth=AUTH)

    assert sio.is_connected()
    (snap,) = received(sio)["snapshot"]
    assert snap["bridge"] == snap["bridge"] | {"online": False, "redis": False}
    assert snap["messages"] == []


def test_set_filter_acknowledges(app: Flask) -> None:
    sio = socket_client(app, auth=AUTH)

    assert sio.emit("set_filter", {"filter": "home/+/temp"}, callback=True) == {"ok": True}
    assert sio.emit("set_filter", {"filter": ""}, callback=True) == {"ok": True}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"filter": "a/#/b"}, "'#' must be a whole level and the last one"),
        ({"filter": 7}, "topic filter must be a string"),
        ("home/#", 'set_filter needs {"filter": "<MQTT topic filter>"}'),
    ],
)
def test_a_bad_filter_is_refused_with_a_reason(app: Flask, data: object, words: str) -> None:
    sio = socket_client(app, auth=AUTH)

    ack = sio.emit("set_filter", data, callback=True)

    assert ack["ok"] is False
    assert words in ack["error"]


def test_each_browser_gets_only_the_messages_its_filter_matches(app: Flask, dash: Services) -> None:
    everything = socket_client(app, auth=AUTH)
    kitchen = socket_client(app, auth=AUTH)
    kitchen.emit("set_filter", {"filter": "home/kitchen/#"}, callback=True)
    received(everything), received(kitchen)

    for topic in ("home/kitchen/temp", "home/hall/temp"):
        dash.relay.handle(CHANNEL_MESSAGES, dumps(message(topic)))
    dash.relay.flush()

    (all_frame,) = received(everything)["mqtt_messages"]
    (kitchen_frame,) = received(kitchen)["mqtt_messages"]
    assert [m["topic"] for m in all_frame["messages"]] == ["home/kitchen/temp", "home/hall/temp"]
    assert [m["topic"] for m in kitchen_frame["messages"]] == ["home/kitchen/temp"]
    assert kitchen_frame["skipped"] == 0


def test_a_burst_arrives_as_one_capped_frame_that_counts_the_rest(app: Flask, dash: Services) -> None:
    sio = socket_client(app, auth=AUTH)
    received(sio)

    for n in range(12):  # DASHBOARD_FRAME_MAX=5 in these tests
        dash.relay.handle(CHANNEL_MESSAGES, dumps(message(f"t/{n}")))
    dash.relay.flush()

    (frame,) = received(sio)["mqtt_messages"]
    assert [m["topic"] for m in frame["messages"]] == ["t/7", "t/8", "t/9", "t/10", "t/11"]
    assert frame["skipped"] == 7


def test_a_disconnected_browser_gets_nothing_more(app: Flask, dash: Services) -> None:
    sio = socket_client(app, auth=AUTH)
    sio.disconnect()

    dash.relay.handle(CHANNEL_MESSAGES, dumps(message("t")))
    dash.relay.flush()

    assert dash.router.client_count == 0


@pytest.mark.parametrize(
    ("channel", "event"),
    [
        (CHANNEL_STATUS, "broker_status"),
        (CHANNEL_STATS, "broker_stats"),
        (CHANNEL_CLIENTS, "clients_update"),
        (CHANNEL_TOPICS, "topics_update"),
    ],
)
def test_snapshots_from_the_bridge_are_forwarded_at_once(
    app: Flask, dash: Services, channel: str, event: str
) -> None:
    sio = socket_client(app, auth=AUTH)
    received(sio)
    body = envelope("whatever", value=1)

    dash.relay.handle(channel, dumps(body))

    assert received(sio)[event] == [body]


def test_messages_that_are_not_json_objects_are_dropped_and_counted(
    app: Flask, dash: Services, caplog: pytest.LogCaptureFixture
) -> None:
    sio = socket_client(app, auth=AUTH)
    received(sio)

    for junk in ("not json", "[1]", "not json either"):
        dash.relay.handle(CHANNEL_STATUS, junk)
    dash.relay.flush()

    assert received(sio) == {}
    assert dash.metrics.registry.get_sample_value("mqtt_dashboard_relay_invalid_total") == 3
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # one line per channel, not one per bad message


def test_bridge_health_is_sent_on_change_and_not_repeated_too_often(
    app: Flask, dash: Services, redis_client: fakeredis.FakeRedis
) -> None:
    sio = socket_client(app, auth=AUTH)
    received(sio)

    dash.relay.check_health()  # first check: always sent
    dash.relay.check_health()  # nothing changed, not due yet
    set_heartbeat(redis_client)
    dash.relay.check_health()  # the bridge came online

    health = received(sio)["bridge_health"]
    assert [h["online"] for h in health] == [False, True]
    assert health[1]["counters"] == {"received": 10, "forwarded": 10}


def test_metrics_count_frames_and_messages_per_client(app: Flask, dash: Services) -> None:
    first = socket_client(app, auth=AUTH)
    socket_client(app, auth=AUTH)
    received(first)

    for n in range(3):
        dash.relay.handle(CHANNEL_MESSAGES, dumps(message(f"t/{n}")))
    dash.relay.flush()

    text = (
        app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    )
    assert "mqtt_dashboard_socket_clients 2.0" in text
    assert "mqtt_dashboard_frames_sent_total 2.0" in text
    assert "mqtt_dashboard_messages_sent_total 6.0" in text
    assert "mqtt_dashboard_relay_reconnects_total 0.0" in text


# --- a slow browser cannot grow a worker without bound (issue 11, point 8) ----------------------------
def _sid(dash: Services, sio: Any) -> str:
    sid: str = dash.socketio.server.manager.sid_from_eio_sid(sio.eio_sid, "/")
    return sid


def test_a_client_that_is_behind_gets_no_frames_and_then_learns_what_it_missed(
    make_app: Callable[..., Flask],
) -> None:
    slow_app = make_app(DASHBOARD_CLIENT_BUFFER="65536")
    dash = services(slow_app)
    slow, fast = socket_client(slow_app, auth=AUTH), socket_client(slow_app, auth=AUTH)
    received(slow), received(fast)
    queued = {_sid(dash, slow): 10 * 1024 * 1024, _sid(dash, fast): 0}
    # What Engine.IO holds for each (measured for real in the integration ring).
    dash.relay.backlog = lambda sid: queued.get(sid, 0)

    for n in range(3):
        dash.relay.handle(CHANNEL_MESSAGES, dumps(message(f"t/{n}")))
    dash.relay.flush()

    assert "mqtt_messages" not in received(slow)  # nothing more piled onto its queue
    assert [m["topic"] for m in received(fast)["mqtt_messages"][0]["messages"]] == ["t/0", "t/1", "t/2"]
    assert dash.metrics.registry.get_sample_value("mqtt_dashboard_frames_withheld_total") == 1

    queued[_sid(dash, slow)] = 0  # it caught up
    for n in range(3, 5):
        dash.relay.handle(CHANNEL_MESSAGES, dumps(message(f"t/{n}")))
    dash.relay.flush()

    (frame,) = received(slow)["mqtt_messages"]
    assert [m["topic"] for m in frame["messages"]] == ["t/3", "t/4"]
    assert frame["skipped"] == 3  # the withheld frame's messages, so the count stays true
    (fast_frame,) = received(fast)["mqtt_messages"]
    assert fast_frame["skipped"] == 0


def test_no_frame_is_larger_than_the_client_buffer(make_app: Callable[..., Flask]) -> None:
    app = make_app(DASHBOARD_CLIENT_BUFFER="65536", DASHBOARD_FRAME_MAX="500")
    dash = services(app)
    sio = socket_client(app, auth=AUTH)
    received(sio)

    for n in range(100):  # 100 messages of 4 KiB = 400 KiB in one frame interval
        dash.relay.handle(CHANNEL_MESSAGES, dumps(message(f"big/{n}", b"x" * 4096)))
    dash.relay.flush()

    (frame,) = received(sio)["mqtt_messages"]
    assert len(dumps(frame)) <= 65536
    assert frame["messages"][-1]["topic"] == "big/99"  # the newest are kept
    assert len(frame["messages"]) + frame["skipped"] == 100
