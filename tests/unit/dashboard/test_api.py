"""The REST API over fakeredis: latest state, history, subscriptions, commands, errors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.contract.protocol import (
    CHANNEL_RESULTS,
    CMD_PUBLISH,
    CMD_SUBSCRIBE,
    CMD_UNSUBSCRIBE,
    HISTORY_FIELD,
    KEY_HISTORY,
    KEY_STATUS_LATEST,
    KEY_SUBSCRIPTION_STATS,
    KEY_SUBSCRIPTIONS,
    KEY_SUBSCRIPTIONS_PAUSED,
    KEY_TOPICS_LATEST,
    command_result,
    dumps,
    envelope,
    subscription_record,
)
from tests.unit.dashboard.fakes import BEARER, FakeBridge, add_history, set_heartbeat


def get(client: FlaskClient, path: str) -> Any:
    return client.get(path, headers=BEARER)


# --- latest state ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/broker/status", "/api/broker/stats", "/api/clients", "/api/topics"])
def test_latest_routes_answer_503_until_the_bridge_has_published(client: FlaskClient, path: str) -> None:
    response = get(client, path)

    assert response.status_code == 503
    assert "not published" in response.get_json()["error"]


def test_latest_routes_return_the_bridges_last_message(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    status = envelope("status_change", connected=True, broker="localhost:1883", reason=None)
    topics = envelope("topics_update", topics=[{"topic": "a", "messages": 3}])
    redis_client.set(KEY_STATUS_LATEST, dumps(status))
    redis_client.set(KEY_TOPICS_LATEST, dumps(topics))

    assert get(client, "/api/broker/status").get_json() == status
    assert get(client, "/api/topics").get_json() == topics


# --- history --------------------------------------------------------------------------------------
def test_messages_come_newest_first_with_their_stream_ids(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    ids = [add_history(redis_client, f"t/{n}") for n in range(3)]

    body = get(client, "/api/messages").get_json()

    assert [m["topic"] for m in body["messages"]] == ["t/2", "t/1", "t/0"]
    assert [m["id"] for m in body["messages"]] == ids[::-1]
    assert body["messages"][0]["payload"] == "x"
    assert body["next_before"] is None


def test_messages_page_with_next_before(client: FlaskClient, redis_client: fakeredis.FakeRedis) -> None:
    for n in range(5):
        add_history(redis_client, f"t/{n}")

    first = get(client, "/api/messages?limit=2").get_json()
    second = get(client, f"/api/messages?limit=2&before={first['next_before']}").get_json()
    third = get(client, f"/api/messages?limit=2&before={second['next_before']}").get_json()

    assert [m["topic"] for m in first["messages"]] == ["t/4", "t/3"]
    assert [m["topic"] for m in second["messages"]] == ["t/2", "t/1"]
    assert [m["topic"] for m in third["messages"]] == ["t/0"]
    assert third["next_before"] is None


def test_messages_filter_by_topic(client: FlaskClient, redis_client: fakeredis.FakeRedis) -> None:
    for topic in ("home/a/temp", "home/b/temp", "office/a/temp", "home/a/hum"):
        add_history(redis_client, topic)

    body = get(client, "/api/messages?topic=home/%2B/temp").get_json()

    assert [m["topic"] for m in body["messages"]] == ["home/b/temp", "home/a/temp"]


def test_a_damaged_history_entry_is_skipped(client: FlaskClient, redis_client: fakeredis.FakeRedis) -> None:
    add_history(redis_client, "good")
    redis_client.xadd(KEY_HISTORY, {HISTORY_FIELD: "not json"})

    assert [m["topic"] for m in get(client, "/api/messages").get_json()["messages"]] == ["good"]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("limit=0", "limit must be between 1 and 1000, got 0"),
        ("limit=5000", "limit must be between 1 and 1000"),
        ("limit=ten", "limit must be a whole number, got 'ten'"),
        ("before=yesterday", "before must be a stream id"),
        ("topic=a/%23/b", "'#' must be a whole level and the last one"),
        ("topic=a%2Bb", "'+' must fill a whole level"),
    ],
)
def test_bad_history_queries_say_what_is_wrong(client: FlaskClient, query: str, words: str) -> None:
    response = get(client, f"/api/messages?{query}")

    assert response.status_code == 400
    assert words in response.get_json()["error"]


def test_export_ndjson_streams_oldest_first_as_a_download(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    for topic in ("a/1", "b/1", "a/2"):
        add_history(redis_client, topic)

    response = get(client, "/api/export?topic=a/%23")

    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [m["topic"] for m in lines] == ["a/1", "a/2"]


def test_export_csv_has_the_documented_columns(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    entry = add_history(redis_client, "plant/1", b'{"t": 21.5, "note": "a,b"}')
    add_history(redis_client, "plant/2", b"\xff\x00")

    response = get(client, "/api/export?format=csv")

    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].endswith('.csv"')
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["id", "timestamp", "topic", "qos", "retain", "encoding", "payload"]
    assert rows[1][0] == entry
    assert rows[1][2:] == ["plant/1", "0", "False", "utf-8", '{"t": 21.5, "note": "a,b"}']
    assert rows[2][5:] == ["base64", "/wA="]


def test_export_csv_defuses_spreadsheet_formulas(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    add_history(redis_client, "=cmd|'/c calc'!A1", b'=HYPERLINK("http://evil","click")')
    add_history(redis_client, "plain", b"-5.5")
    add_history(redis_client, "sum", b"-1+1")

    rows = list(csv.reader(io.StringIO(get(client, "/api/export?format=csv").get_data(as_text=True))))

    assert rows[1][2] == "'=cmd|'/c calc'!A1"
    assert rows[1][6] == '\'=HYPERLINK("http://evil","click")'
    assert rows[2][6] == "-5.5"  # a reading, not a formula
    assert rows[3][6] == "'-1+1"


def test_export_stops_at_its_limit(client: FlaskClient, redis_client: fakeredis.FakeRedis) -> None:
    for n in range(1200):  # more than one chunk
        add_history(redis_client, f"t/{n}")

    lines = get(client, "/api/export?limit=1100").get_data(as_text=True).splitlines()

    assert len(lines) == 1100
    assert json.loads(lines[-1])["topic"] == "t/1099"


# --- issue 11, point 7: an export that Redis cuts short says so in the file -----------------------------
def test_an_ndjson_export_cut_short_by_redis_ends_with_an_incomplete_record(
    client: FlaskClient, redis_client: fakeredis.FakeRedis, redis_server: fakeredis.FakeServer
) -> None:
    for n in range(600):  # more than one chunk of 500
        add_history(redis_client, f"t/{n}")
    response = client.get("/api/export", headers=BEARER, buffered=False)
    chunks = iter(response.response)
    first = next(chunks)
    redis_server.connected = False  # Redis goes away during the download

    text = (first + b"".join(chunks)).decode()

    assert response.status_code == 200  # already sent when Redis failed
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == 501  # the first chunk, then the record that says it is incomplete
    last = records[-1]
    assert last["type"] == "export_incomplete"
    assert last["exported"] == 500
    assert "incomplete" in last["error"] and "Redis" in last["error"]


def test_a_csv_export_cut_short_by_redis_ends_with_an_incomplete_row(
    client: FlaskClient, redis_client: fakeredis.FakeRedis, redis_server: fakeredis.FakeServer
) -> None:
    for n in range(600):  # more than one chunk of 500, and more than one 64 KiB piece of CSV
        add_history(redis_client, f"t/{n}", b"x" * 300)
    response = client.get("/api/export?format=csv", headers=BEARER, buffered=False)
    chunks = iter(response.response)
    first = next(chunks)
    redis_server.connected = False

    rows = list(csv.reader(io.StringIO((first + b"".join(chunks)).decode())))

    assert rows[0][0] == "id"
    assert len(rows) == 1 + 500 + 1
    assert rows[-1][0] == "INCOMPLETE"
    assert "after 500 messages" in rows[-1][6]


def test_export_refuses_an_unknown_format(client: FlaskClient) -> None:
    response = get(client, "/api/export?format=xml")

    assert response.status_code == 400
    assert response.get_json() == {"error": "format must be ndjson or csv"}


# --- subscriptions --------------------------------------------------------------------------------
def test_subscriptions_list_command_and_config_filters(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    redis_client.hset(KEY_SUBSCRIPTIONS, "sensors/#", subscription_record(1, 1700000000.0))
    set_heartbeat(redis_client, topics=["#", "$SYS/#"], started_at=1600000000.0)

    body = get(client, "/api/subscriptions").get_json()

    none_yet = {"messages": 0, "bytes": 0, "last_message_at": None, "paused": False}
    assert body["subscriptions"] == [
        {"filter": "sensors/#", "qos": 1, "created_at": 1700000000.0, "source": "command", **none_yet},
        {"filter": "#", "qos": None, "created_at": 1600000000.0, "source": "config", **none_yet},
        {"filter": "$SYS/#", "qos": None, "created_at": 1600000000.0, "source": "config", **none_yet},
    ]


def test_subscriptions_carry_the_bridges_statistics_and_pauses(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    redis_client.hset(KEY_SUBSCRIPTIONS, "sensors/#", subscription_record(1, 1700000000.0))
    set_heartbeat(redis_client, topics=["#"], started_at=1600000000.0)
    stats = {"filters": {"#": {"messages": 7, "bytes": 70, "last_message_at": 1700000001.5}}, "since": 1.0}
    redis_client.set(KEY_SUBSCRIPTION_STATS, dumps(stats))
    redis_client.hset(KEY_SUBSCRIPTIONS_PAUSED, "sensors/#", dumps({"qos": 1, "paused_at": 1700000002.0}))

    found = {s["filter"]: s for s in get(client, "/api/subscriptions").get_json()["subscriptions"]}

    assert {k: found["#"][k] for k in ("messages", "bytes", "last_message_at", "paused")} == {
        "messages": 7,
        "bytes": 70,
        "last_message_at": 1700000001.5,
        "paused": False,
    }
    assert (found["sensors/#"]["messages"], found["sensors/#"]["paused"]) == (0, True)


def test_pause_and_resume_send_their_commands(client: FlaskClient, bridge: FakeBridge) -> None:
    assert client.post("/api/subscriptions/pause", json={"filter": "a/#"}, headers=BEARER).status_code == 200
    assert client.post("/api/subscriptions/resume", json={"filter": "a/#"}, headers=BEARER).status_code == 200
    bad = client.post("/api/subscriptions/pause", json={"filter": "a/#/b"}, headers=BEARER)

    assert [(c["type"], c["topic"]) for c in bridge.received] == [
        ("cmd_pause_subscription", "a/#"),
        ("cmd_resume_subscription", "a/#"),
    ]
    assert bad.status_code == 400 and "malformed" in bad.get_json()["error"]


def test_subscribe_sends_a_command_and_returns_the_bridges_answer(
    client: FlaskClient, bridge: FakeBridge
) -> None:
    response = client.post("/api/subscriptions", json={"filter": "sensors/#", "qos": 1}, headers=BEARER)

    assert response.status_code == 200
    result = response.get_json()
    assert result["type"] == "command_result"
    assert result["ok"] is True
    (sent,) = bridge.received
    assert (sent["type"], sent["topic"], sent["qos"]) == (CMD_SUBSCRIBE, "sensors/#", 1)
    assert len(sent["id"]) == 32 and result["id"] == sent["id"]


def test_unsubscribe_takes_the_url_encoded_filter(client: FlaskClient, bridge: FakeBridge) -> None:
    response = client.delete("/api/subscriptions/sensors/%2B/temp/%23", headers=BEARER)

    assert response.status_code == 200
    assert (bridge.received[0]["type"], bridge.received[0]["topic"]) == (CMD_UNSUBSCRIBE, "sensors/+/temp/#")


@pytest.mark.parametrize("topic_filter", ["a//b", "/leading", "trailing/", "$SYS/#"])
def test_unsubscribe_keeps_filters_with_odd_slashes_intact(
    client: FlaskClient, bridge: FakeBridge, topic_filter: str
) -> None:
    path = quote(topic_filter, safe="/")

    response = client.delete(f"/api/subscriptions/{path}", headers=BEARER)

    assert response.status_code == 200
    assert bridge.received[0]["topic"] == topic_filter


def test_a_config_filter_cannot_be_removed_here(
    client: FlaskClient, redis_client: fakeredis.FakeRedis, bridge: FakeBridge
) -> None:
    set_heartbeat(redis_client, topics=["#"])

    response = client.delete("/api/subscriptions/%23", headers=BEARER)

    assert response.status_code == 400
    assert "MQTT_TOPICS" in response.get_json()["error"]
    assert bridge.received == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "filter is missing"),
        ({"filter": ""}, "topic filter is empty"),
        ({"filter": "a/#/b"}, "'#' must be a whole level and the last one"),
        ({"filter": "a", "qos": 3}, "qos must be 0, 1 or 2"),
        ({"filter": "a", "qos": "1"}, "qos must be 0, 1 or 2"),
    ],
)
def test_bad_subscriptions_are_refused_before_reaching_the_bridge(
    client: FlaskClient, bridge: FakeBridge, body: dict, words: str
) -> None:
    response = client.post("/api/subscriptions", json=body, headers=BEARER)

    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert bridge.received == []


# --- publish ----------------------------------------------------------------------------------------
def test_publish_sends_the_contract_command(client: FlaskClient, bridge: FakeBridge) -> None:
    body = {"topic": "lights/hall", "payload": "on", "qos": 1, "retain": True}

    response = client.post("/api/publish", json=body, headers=BEARER)

    assert response.status_code == 200
    assert response.get_json()["ok"] is True
    (sent,) = bridge.received
    assert sent["type"] == CMD_PUBLISH
    assert {k: sent[k] for k in ("topic", "payload", "qos", "retain", "encoding")} == {
        "topic": "lights/hall",
        "payload": "on",
        "qos": 1,
        "retain": True,
        "encoding": "utf-8",
    }


def test_publish_defaults_to_an_empty_payload(client: FlaskClient, bridge: FakeBridge) -> None:
    assert client.post("/api/publish", json={"topic": "a"}, headers=BEARER).status_code == 200
    assert bridge.received[0]["payload"] == ""


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "topic is missing"),
        ({"topic": "a/+"}, "contains a wildcard (+ or #); publish needs an exact topic"),
        ({"topic": "a", "qos": 5}, "qos must be 0, 1 or 2"),
        ({"topic": "a", "retain": "yes"}, "retain must be true or false"),
        ({"topic": "a", "payload": 42}, "payload must be a string"),
        ({"topic": "a", "payload": "!!", "encoding": "base64"}, "payload is not valid base64"),
        ({"topic": "a", "encoding": "latin-1"}, "encoding must be one of utf-8, base64"),
        ({"topic": "a" * 70_000}, "MQTT allows at most 65,535"),
        # issue 21, defect 12: the broker's own topics (a $CONTROL publish bypassed cmd_dynsec)
        ({"topic": "$CONTROL/dynamic-security/v1", "payload": "{}"}, "starts with '$'"),
        ({"topic": "$SYS/broker/version"}, "topics starting with '$' belong to the broker"),
    ],
)
def test_bad_publishes_get_the_bridges_words(
    client: FlaskClient, bridge: FakeBridge, body: dict, words: str
) -> None:
    response = client.post("/api/publish", json=body, headers=BEARER)

    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert bridge.received == []


def test_publish_carries_mqtt5_properties_to_the_bridge(client: FlaskClient, bridge: FakeBridge) -> None:
    properties = {"content_type": "application/json", "user_properties": [["a", "1"], ["a", "2"]]}

    response = client.post("/api/publish", json={"topic": "t", "properties": properties}, headers=BEARER)

    assert response.status_code == 200
    assert bridge.received[0]["properties"] == properties


def test_bad_mqtt5_properties_are_refused_before_reaching_the_bridge(
    client: FlaskClient, bridge: FakeBridge
) -> None:
    body = {"topic": "t", "properties": {"correlation_data": "%%"}}

    response = client.post("/api/publish", json=body, headers=BEARER)

    assert response.status_code == 400
    assert "correlation_data is not valid base64" in response.get_json()["error"]
    assert bridge.received == []


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("{not json", "the body must be JSON"),
        ("[1, 2]", "the body must be a JSON object"),
        ("", "the body must be JSON"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(client: FlaskClient, data: str, words: str) -> None:
    response = client.post("/api/publish", data=data, headers={**BEARER, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.get_json() == {"error": words}


def test_the_bridges_refusal_is_a_400_with_its_error(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    with FakeBridge(redis_client, refuse="the broker is not connected"):
        response = client.post("/api/publish", json={"topic": "a"}, headers=BEARER)

    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "the broker is not connected"
    assert body["ok"] is False


def test_publish_with_no_bridge_listening_answers_504_at_once(client: FlaskClient) -> None:
    response = client.post("/api/publish", json={"topic": "a"}, headers=BEARER)

    assert response.status_code == 504
    assert response.get_json() == {"error": "the bridge did not answer: no bridge is listening on Redis"}


def test_a_bridge_that_never_answers_times_out_with_504(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    client = make_app(DASHBOARD_COMMAND_TIMEOUT="0.2").test_client()
    with FakeBridge(redis_client, silent=True) as bridge:
        response = client.post("/api/publish", json={"topic": "a"}, headers=BEARER)

    assert response.status_code == 504
    assert response.get_json() == {"error": "the bridge did not answer within 0.2 s"}
    assert len(bridge.received) == 1


def test_answers_for_other_commands_are_not_taken_for_ours(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    # A bridge that answers with the wrong id: the dashboard keeps waiting, then gives up.
    client = make_app(DASHBOARD_COMMAND_TIMEOUT="0.3").test_client()

    class WrongIds(FakeBridge):
        def _serve(self) -> None:
            while not self._stop.is_set():
                if self._pubsub.get_message(timeout=0.05) is not None:
                    self.client.publish(
                        CHANNEL_RESULTS, dumps(command_result("other", CMD_PUBLISH, True, None))
                    )

    with WrongIds(redis_client):
        assert client.post("/api/publish", json={"topic": "a"}, headers=BEARER).status_code == 504


# --- errors --------------------------------------------------------------------------------------------
def test_unknown_api_routes_answer_json_404(client: FlaskClient) -> None:
    response = get(client, "/api/nothing-here")

    assert response.status_code == 404
    assert response.get_json() == {"error": "not found: /api/nothing-here"}


def test_a_wrong_method_answers_json_405(client: FlaskClient) -> None:
    response = client.put("/api/publish", json={}, headers=BEARER)

    assert response.status_code == 405
    assert response.get_json() == {"error": "PUT is not allowed on /api/publish"}


def test_a_body_over_the_limit_answers_413(make_app: Callable[..., Flask]) -> None:
    client = make_app(DASHBOARD_MAX_BODY="2048").test_client()

    response = client.post("/api/publish", json={"topic": "a", "payload": "x" * 5000}, headers=BEARER)

    assert response.status_code == 413
    assert response.get_json() == {"error": "the request body is larger than the limit of 2,048 bytes"}


def test_redis_down_answers_503_with_where_it_was(
    client: FlaskClient, redis_server: fakeredis.FakeServer
) -> None:
    redis_server.connected = False

    response = get(client, "/api/topics")

    assert response.status_code == 503
    assert response.get_json() == {"error": "Redis at localhost:6379/0 is not reachable"}


def test_review_findings_on_odd_input_get_400_not_500(client: FlaskClient) -> None:
    for before in ("0-0", "0", "99999999999999999999-0"):
        answer = client.get(f"/api/messages?before={before}", headers=BEARER)
        assert answer.status_code == 400, before
        assert "stream id" in answer.get_json()["error"]
    deep = client.post(
        "/api/publish", data="[" * 200_000, headers={**BEARER, "Content-Type": "application/json"}
    )
    assert deep.status_code == 400
    assert deep.get_json()["error"] == "the body must be JSON"


def test_a_publish_whose_outcome_is_unknown_is_a_504_that_says_it_may_have_arrived(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    """Issue 21, defect 2: sent but never acknowledged is not "refused" (400): retrying blindly
    could actuate a device twice."""
    words = (
        "the broker did not acknowledge the publish within 3 s; "
        "it had already been sent, so it may still reach subscribers"
    )
    with FakeBridge(redis_client, refuse=words, outcome="unknown"):
        response = client.post("/api/publish", json={"topic": "valve/1", "qos": 1}, headers=BEARER)

    assert response.status_code == 504
    body = response.get_json()
    assert (body["ok"], body["outcome"], body["error"]) == (False, "unknown", words)
