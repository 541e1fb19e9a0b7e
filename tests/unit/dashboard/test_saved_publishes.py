"""Publish templates and the publish history, on the server, over fakeredis and a fake bridge."""

from __future__ import annotations

from typing import Any

import fakeredis
from flask.testing import FlaskClient

from bridge.contract.protocol import KEY_PUBLISH_HISTORY, KEY_PUBLISH_TEMPLATES
from tests.unit.dashboard.fakes import BEARER, FakeBridge

LAMP = {
    "name": "Lamp on",
    "topic": "devices/lamp/set",
    "payload": '{"on": true}',
    "qos": 1,
    "retain": True,
    "properties": {"content_type": "application/json", "user_properties": [["origin", "dashboard"]]},
}


def post(client: FlaskClient, path: str, body: Any) -> Any:
    return client.post(path, json=body, headers=BEARER)


def test_a_saved_template_is_seen_by_every_user_and_every_worker(
    client: FlaskClient, make_app: Any, redis_client: fakeredis.FakeRedis
) -> None:
    created = post(client, "/api/publish/templates", LAMP)
    assert created.status_code == 201
    template = created.get_json()
    assert template["name"] == "Lamp on" and len(template["id"]) == 12
    assert template["properties"] == LAMP["properties"]

    other_worker = make_app().test_client()  # another worker, another browser: same Redis
    listed = other_worker.get("/api/publish/templates", headers=BEARER).get_json()["templates"]
    assert [t["id"] for t in listed] == [template["id"]]
    assert redis_client.hexists(KEY_PUBLISH_TEMPLATES, template["id"])


def test_templates_are_listed_by_name_and_can_be_changed_and_deleted(client: FlaskClient) -> None:
    b = post(client, "/api/publish/templates", {**LAMP, "name": "b valve"}).get_json()
    post(client, "/api/publish/templates", {**LAMP, "name": "A lamp"})
    names = [t["name"] for t in client.get("/api/publish/templates", headers=BEARER).get_json()["templates"]]
    assert names == ["A lamp", "b valve"]

    changed = client.put(
        f"/api/publish/templates/{b['id']}", json={**LAMP, "name": "b valve", "qos": 2}, headers=BEARER
    )
    assert changed.status_code == 200
    assert changed.get_json()["qos"] == 2 and changed.get_json()["created_at"] == b["created_at"]

    assert client.delete(f"/api/publish/templates/{b['id']}", headers=BEARER).status_code == 200
    assert client.delete(f"/api/publish/templates/{b['id']}", headers=BEARER).status_code == 404
    names = [t["name"] for t in client.get("/api/publish/templates", headers=BEARER).get_json()["templates"]]
    assert names == ["A lamp"]


def test_bad_templates_are_refused_with_a_reason(client: FlaskClient) -> None:
    cases = [
        ({**LAMP, "name": " "}, "name is missing: give the template a name"),
        ({**LAMP, "topic": "devices/+/set"}, "contains a wildcard"),
        ({**LAMP, "qos": 3}, "qos must be 0, 1 or 2"),
        ({**LAMP, "payload": "%%", "encoding": "base64"}, "payload is not valid base64"),
        ({**LAMP, "properties": {"colour": "red"}}, "unknown MQTT 5 property 'colour'"),
        ({**LAMP, "properties": {"message_expiry_interval": -1}}, "property message_expiry_interval"),
        ([1, 2], "the body must be a JSON object"),
    ]
    for body, words in cases:
        response = post(client, "/api/publish/templates", body)
        assert response.status_code == 400, body
        assert words in response.get_json()["error"], (body, response.get_json())


def test_running_a_template_publishes_it_and_records_the_result(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    template = post(client, "/api/publish/templates", LAMP).get_json()
    with FakeBridge(redis_client) as bridge:
        response = post(client, f"/api/publish/templates/{template['id']}/run", {})
    assert response.status_code == 200 and response.get_json()["ok"] is True
    sent = bridge.received[0]
    assert (sent["topic"], sent["payload"], sent["qos"], sent["retain"]) == (
        "devices/lamp/set",
        '{"on": true}',
        1,
        True,
    )
    assert sent["properties"] == LAMP["properties"]  # the template's MQTT 5 properties go along
    history = client.get("/api/publish/history", headers=BEARER).get_json()["publishes"]
    assert history[0]["template"] == "Lamp on" and history[0]["ok"] is True
    assert history[0]["properties"] == LAMP["properties"]


def test_every_api_publish_is_in_the_history_newest_first_with_its_result(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    with FakeBridge(redis_client):
        assert post(client, "/api/publish", {"topic": "a/1", "payload": "one"}).status_code == 200
    with FakeBridge(redis_client, refuse="the broker at localhost:1883 is not connected"):
        assert post(client, "/api/publish", {"topic": "a/2", "payload": "two"}).status_code == 400
    assert post(client, "/api/publish", {"topic": "a/#", "payload": "three"}).status_code == 400

    history = client.get("/api/publish/history", headers=BEARER).get_json()["publishes"]
    assert [(e["topic"], e["ok"], e["status"]) for e in history] == [
        ("a/#", False, 400),
        ("a/2", False, 400),
        ("a/1", True, 200),
    ]
    assert "wildcard" in history[0]["error"]
    assert history[1]["error"] == "the broker at localhost:1883 is not connected"
    assert history[2]["error"] is None and history[2]["payload"] == "one"


def test_the_history_keeps_the_last_50_and_big_payloads_by_size_only(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    with FakeBridge(redis_client):
        for i in range(52):
            post(client, "/api/publish", {"topic": f"n/{i}", "payload": "x" * (20_000 if i == 51 else 1)})
    history = client.get("/api/publish/history", headers=BEARER).get_json()["publishes"]
    assert len(history) == 50 and redis_client.llen(KEY_PUBLISH_HISTORY) == 50
    assert history[0]["topic"] == "n/51" and history[-1]["topic"] == "n/2"
    assert history[0]["payload"] is None and history[0]["payload_chars"] == 20_000

    assert client.delete("/api/publish/history", headers=BEARER).status_code == 200
    assert client.get("/api/publish/history", headers=BEARER).get_json()["publishes"] == []


def test_saved_publishes_need_a_login_and_record_nothing_without_one(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    assert client.get("/api/publish/templates").status_code == 401
    assert client.post("/api/publish/templates", json=LAMP).status_code == 401
    assert client.get("/api/publish/history").status_code == 401
    assert client.post("/api/publish", json={"topic": "a/1"}).status_code == 401
    assert redis_client.llen(KEY_PUBLISH_HISTORY) == 0


def test_running_an_unknown_template_is_404(client: FlaskClient) -> None:
    response = post(client, "/api/publish/templates/nope/run", {})
    assert response.status_code == 404
    assert response.get_json()["error"] == "no template 'nope'"


def test_a_refused_publishs_huge_properties_are_kept_by_size_only(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    """Issue 21, defect 17: like a large payload, properties of more than 16 KiB are not stored."""
    huge = {"user_properties": [["k", "v" * 10_000]] * 101}  # refused: at most 100 pairs

    assert post(client, "/api/publish", {"topic": "a/b", "properties": huge}).status_code == 400

    (entry,) = client.get("/api/publish/history", headers=BEARER).get_json()["publishes"]
    assert entry["properties"] is None and entry["properties_bytes"] > 1_000_000
    assert len(redis_client.lindex(KEY_PUBLISH_HISTORY, 0) or "") < 2_000


def test_a_template_may_not_publish_to_the_brokers_own_topics(client: FlaskClient) -> None:
    """Issue 21, defect 12: $CONTROL/... would bypass cmd_dynsec's checks."""
    for topic in ("$CONTROL/dynamic-security/v1", "$SYS/broker/version"):
        answer = post(client, "/api/publish/templates", {**LAMP, "topic": topic})
        assert answer.status_code == 400 and "starts with '$'" in answer.get_json()["error"]
