"""A tenant user reaches nothing outside the tenant's topics (issue 26, point 3).

The tenant ``acme``'s operator signs in and tries every route of the table (both registrations),
every event, the filters a curious or hostile user would try (wildcards, ``$SYS``, a similar
tenant name, shared subscriptions, case, invisible characters, encoded forms) and every export
size. Another tenant's data, other topics and the broker's own figures are in Redis the whole
time, each carrying a marker; no answer the tenant gets holds any marker, no command outside the
tenant reaches the bridge.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.contract.protocol import (
    CHANNEL_CLIENTS,
    CHANNEL_MESSAGES,
    CHANNEL_STATS,
    CHANNEL_STATUS,
    CHANNEL_TOPICS,
    KEY_CLIENTS_LATEST,
    KEY_PUBLISH_HISTORY,
    KEY_PUBLISH_TEMPLATES,
    KEY_STATS_LATEST,
    KEY_STATUS_LATEST,
    KEY_SUBSCRIPTIONS,
    KEY_TENANT_ACCOUNTS,
    KEY_TOPICS_LATEST,
    dumps,
    envelope,
    subscription_record,
)
from dashboard.extensions import services
from dashboard.policy import OPERATOR, VIEWER
from tests.unit.dashboard.fakes import (
    SAME_ORIGIN,
    TOKEN,
    FakeBridge,
    add_history,
    add_user,
    log_in_as,
    message,
    received,
    set_heartbeat,
    socket_client,
)
from tests.unit.dashboard.route_table import BODY, CLOSED, ROUTES, app_routes, url_for_rule

OURS = "tenants/acme"
# Every string that would show a leak: another tenant, a tenant whose name starts like ours,
# topics outside tenants, $SYS, the broker's totals and the bridge's own details.
MARKERS = (
    "beta",
    "acmex",
    "zeta",
    "sys-reading",
    "root-reading",
    "mosquitto-sys-version",
    "bridge-acct",
    "sys-broker-host",
    "4242",  # the bridge's pid in its heartbeat
)
OUTSIDE_TOPICS = ("tenants/beta/temp", "tenants/acmex/temp", "other/zeta", "$SYS/broker/uptime", "tenants")
OUTSIDE_FILTERS = (
    "+",
    "+/#",
    "+/+/temp",
    "$SYS/#",
    "$SYS/broker/uptime",
    "tenants",
    "tenants/#",
    "tenants/+",
    "tenants/+/#",
    "tenants/+/temp",
    "tenants/beta/#",
    "tenants/beta/temp",
    "tenants/acmex/#",
    "tenants/ACME/#",
    "tenants/acme\u200b/#",  # an invisible character: another level altogether
    "/tenants/acme/#",
    "tenants//acme/#",
    "tenants%2Fbeta%2F%23",  # arrives decoded once: a literal level, outside
    "$share/g/tenants/beta/#",
    "$share/g/tenants/acme/#",
    "$share/g/#",
    "other/zeta",
    "../tenants/beta/#",
)
MALFORMED = ("tenants/acme+/#", "tenants/acme/#/x", "tenants/acme/\x00")
INSIDE_FILTERS = (OURS + "/#", OURS + "/temp", OURS + "/+", OURS, OURS + "/../beta/#")
OUTSIDE_PUBLISH = (*OUTSIDE_TOPICS, "tenants/ACME/x", "/tenants/acme/x", "tenants/acme\u200b/x")


@dataclass
class TenantWorld:
    app: Flask
    tenant: FlaskClient  # acme's operator
    bridge: FakeBridge
    redis: fakeredis.FakeRedis


def no_leak(text: str) -> None:
    leaked = [m for m in MARKERS if m in text]
    assert not leaked, f"{leaked} in {text[:400]}"


def refused(response: Any) -> None:
    """A refusal in words, with nothing else in it."""
    assert response.status_code in (400, 403), (response.status_code, response.get_data(as_text=True)[:300])
    assert set(response.get_json()) == {"error"}


@pytest.fixture
def world(app: Flask, redis_client: fakeredis.FakeRedis) -> Iterator[TenantWorld]:
    for n in range(6):
        add_history(redis_client, f"{OURS}/temp", f"acme-reading-{n}".encode())
    for topic, marker in zip(
        OUTSIDE_TOPICS, ("beta", "acmex", "zeta", "sys-reading", "root-reading"), strict=True
    ):
        add_history(redis_client, topic, f"{marker}-payload".encode())
    add_history(redis_client, f"{OURS}/temp", b"acme-newest")
    topics = [
        {"topic": t, "messages": 3, "last_payload_preview": t} for t in (f"{OURS}/temp", *OUTSIDE_TOPICS)
    ]
    redis_client.set(KEY_TOPICS_LATEST, dumps(envelope("topics_update", topics=topics)))
    clients = [
        {"client_id": "acme-device", "username": "acme-dev"},
        {"client_id": "beta-device", "username": "beta-dev"},
        {"client_id": "bridge", "username": "bridge-acct"},
    ]
    redis_client.set(KEY_CLIENTS_LATEST, dumps(envelope("clients_update", clients=clients)))
    redis_client.set(KEY_TENANT_ACCOUNTS, dumps({"tenants": {"acme": ["acme-dev"], "beta": ["beta-dev"]}}))
    redis_client.set(
        KEY_STATS_LATEST, dumps(envelope("stats_update", data={"version": "mosquitto-sys-version"}))
    )
    redis_client.set(
        KEY_STATUS_LATEST, dumps(envelope("status_change", connected=True, broker="localhost:1883"))
    )
    set_heartbeat(redis_client, broker="sys-broker-host")
    for topic_filter in (f"{OURS}/#", "tenants/beta/#", "other/zeta/#"):
        redis_client.hset(KEY_SUBSCRIPTIONS, topic_filter, subscription_record(0, 1.0))
    for name, topic in (
        ("tmpl-acme", f"{OURS}/set"),
        ("tmpl-beta", "tenants/beta/set"),
        ("tmpl-sensors", "sensors/a"),
    ):
        template = {"id": name, "name": name, "topic": topic, "payload": "1", "qos": 0, "retain": False}
        redis_client.hset(KEY_PUBLISH_TEMPLATES, name, dumps(template))
    for topic in (f"{OURS}/set", "tenants/beta/set"):
        redis_client.lpush(KEY_PUBLISH_HISTORY, dumps({"timestamp": 1.0, "topic": topic, "ok": True}))
    add_user(app, "acme-op", OPERATOR, tenant="acme")
    add_user(app, "target", VIEWER)
    with FakeBridge(redis_client) as bridge:
        yield TenantWorld(app, log_in_as(app, "acme-op"), bridge, redis_client)


def get(client: FlaskClient, url: str, **query: Any) -> Any:
    response = client.get(url, query_string=query, headers=SAME_ORIGIN)
    response.get_data()
    response.close()
    return response


def test_every_route_answers_a_tenant_user_with_the_tenants_data_or_a_refusal(world: TenantWorld) -> None:
    walked = 0
    for key, rules in sorted(app_routes(world.app).items()):
        if key in ("POST /api/login", "POST /api/logout", "POST /api/session/password"):
            continue  # their own business, not data (tested with the users)
        _, tenancy = ROUTES[key]
        method = key.split(" ", 1)[0]
        for rule in rules:
            body = BODY if method in ("POST", "PUT", "PATCH", "DELETE") else None
            response = world.tenant.open(url_for_rule(rule), method=method, json=body, headers=SAME_ORIGIN)
            text = response.get_data(as_text=True)
            response.close()
            if tenancy == CLOSED or body is not None:
                # BODY's topic and filter (sensors/…) are outside acme: every write is refused
                assert response.status_code in (403, 404), (key, rule, response.status_code, text[:300])
            else:
                assert response.status_code not in (401, 403), (key, rule, text[:300])
                no_leak(text)
            walked += 1
    assert world.bridge.received == []  # no command of the tenant's left the dashboard
    assert walked > 80


# One world per test and a loop inside: a world per filter would cost the unit ring a minute.
def test_history_outside_the_tenant_is_refused(world: TenantWorld) -> None:
    for route in ("/api/messages", "/api/brokers/default/messages"):
        for topic_filter in OUTSIDE_FILTERS + MALFORMED:
            refused(get(world.tenant, route, topic=topic_filter))


def test_no_export_outside_the_tenant_whatever_its_range(world: TenantWorld) -> None:
    for route in ("/api/export", "/api/brokers/default/export"):
        for kind in ("ndjson", "csv"):
            for limit in ("1", "5", "1000000"):
                for topic_filter in OUTSIDE_FILTERS:
                    refused(get(world.tenant, route, topic=topic_filter, format=kind, limit=limit))


@pytest.mark.parametrize("topic_filter", ("", "#", *INSIDE_FILTERS))
def test_history_and_export_inside_the_tenant_hold_only_its_messages(
    world: TenantWorld, topic_filter: str
) -> None:
    page = get(world.tenant, "/api/messages", topic=topic_filter, limit="1000")
    ndjson = get(world.tenant, "/api/export", topic=topic_filter, format="ndjson", limit="1000000")
    csv = get(world.tenant, "/api/export", topic=topic_filter, format="csv")

    assert page.status_code == ndjson.status_code == csv.status_code == 200
    for text in (page.get_data(as_text=True), ndjson.get_data(as_text=True), csv.get_data(as_text=True)):
        no_leak(text)
    topics = {m["topic"] for m in page.get_json()["messages"]}
    assert topics <= {f"{OURS}/temp"}
    if topic_filter in ("", "#", f"{OURS}/#"):
        assert len(page.get_json()["messages"]) == 7  # everything of acme's, nothing else
        assert len(ndjson.get_data(as_text=True).splitlines()) == 7


def test_paging_through_the_history_never_leaves_the_tenant(world: TenantWorld) -> None:
    seen, before = [], None
    for _ in range(20):
        query = {"limit": "2"} | ({"before": before} if before else {})
        body = get(world.tenant, "/api/messages", **query).get_json()
        seen += body["messages"]
        before = body["next_before"]
        if before is None:
            break
    assert {m["topic"] for m in seen} == {f"{OURS}/temp"} and len(seen) == 7


def test_url_encoded_and_double_encoded_filters_are_refused(world: TenantWorld) -> None:
    for raw in ("tenants%2Fbeta%2F%23", "%2B%2F%23", "tenants%252Fbeta", "%24SYS%2F%23", "%2B"):
        refused(world.tenant.get(f"/api/messages?topic={raw}"))
        refused(world.tenant.get(f"/api/export?topic={raw}&limit=1000000"))
    # "%23" is "#", everything: for a tenant user, everything of the tenant's
    everything = world.tenant.get("/api/messages?topic=%23")
    no_leak(everything.get_data(as_text=True))
    assert {m["topic"] for m in everything.get_json()["messages"]} == {f"{OURS}/temp"}


def test_publishing_outside_the_tenant_is_refused_in_words(world: TenantWorld) -> None:
    for topic in OUTSIDE_PUBLISH:
        for url in ("/api/publish", "/api/brokers/default/publish"):
            response = world.tenant.post(url, json={"topic": topic, "payload": "x"}, headers=SAME_ORIGIN)
            refused(response)
            if topic.startswith("$"):  # the broker's own topics are refused to everyone, first
                assert response.status_code == 400, topic
                continue
            assert response.status_code == 403, topic
            assert "outside your tenant's topics" in response.get_json()["error"]
            assert f"under {OURS}/#" in response.get_json()["error"]
    assert world.bridge.received == []


def test_subscriptions_and_clears_outside_the_tenant_are_refused(world: TenantWorld) -> None:
    for url in (
        "/api/subscriptions",
        "/api/subscriptions/pause",
        "/api/subscriptions/resume",
        "/api/retained/clear",
    ):
        for topic_filter in ("#", *OUTSIDE_FILTERS, *MALFORMED):
            refused(world.tenant.post(url, json={"filter": topic_filter}, headers=SAME_ORIGIN))
    for topic_filter in ("#", *OUTSIDE_FILTERS):
        refused(
            world.tenant.delete(f"/api/subscriptions/{quote(topic_filter, safe='')}", headers=SAME_ORIGIN)
        )
    assert world.bridge.received == []


def test_inside_the_tenant_an_operator_publishes_subscribes_and_clears(world: TenantWorld) -> None:
    tenant = world.tenant
    assert (
        tenant.post(
            "/api/publish", json={"topic": f"{OURS}/set", "payload": "on"}, headers=SAME_ORIGIN
        ).status_code
        == 200
    )
    assert (
        tenant.post("/api/subscriptions", json={"filter": f"{OURS}/#"}, headers=SAME_ORIGIN).status_code
        == 200
    )
    assert (
        tenant.post("/api/retained/clear", json={"filter": f"{OURS}/temp"}, headers=SAME_ORIGIN).status_code
        == 200
    )
    assert tenant.post("/api/publish/templates/tmpl-acme/run", headers=SAME_ORIGIN).status_code == 200

    sent = [(c["type"], c["topic"]) for c in world.bridge.received]
    assert sent == [
        ("cmd_publish", f"{OURS}/set"),
        ("cmd_subscribe", f"{OURS}/#"),
        ("cmd_clear_retained", f"{OURS}/temp"),
        ("cmd_publish", f"{OURS}/set"),
    ]


def test_lists_hold_only_the_tenants_topics_clients_subscriptions_templates_and_publishes(
    world: TenantWorld,
) -> None:
    tenant = world.tenant
    topics = get(tenant, "/api/topics").get_json()
    clients = get(tenant, "/api/clients").get_json()
    subscriptions = get(tenant, "/api/subscriptions").get_json()
    templates = get(tenant, "/api/publish/templates").get_json()
    history = get(tenant, "/api/publish/history").get_json()
    brokers = get(tenant, "/api/brokers").get_json()

    assert [t["topic"] for t in topics["topics"]] == [f"{OURS}/temp"]
    assert topics["summary"]["topics"] == 1 and topics["summary"]["messages"] == 3
    assert [c["username"] for c in clients["clients"]] == ["acme-dev"]
    assert [s["filter"] for s in subscriptions["subscriptions"]] == [f"{OURS}/#"]
    assert [t["id"] for t in templates["templates"]] == ["tmpl-acme"]
    assert [p["topic"] for p in history["publishes"]] == [f"{OURS}/set"]
    assert brokers["brokers"] == [{"name": "default", "online": True, "connected": True, "expected": True}]
    for answer in (topics, clients, subscriptions, templates, history, brokers):
        no_leak(json.dumps(answer))


def test_another_tenants_templates_cannot_be_run_changed_or_deleted(world: TenantWorld) -> None:
    tenant = world.tenant
    assert tenant.post("/api/publish/templates/tmpl-beta/run", headers=SAME_ORIGIN).status_code == 404
    assert tenant.put("/api/publish/templates/tmpl-beta", json=BODY, headers=SAME_ORIGIN).status_code == 404
    assert tenant.delete("/api/publish/templates/tmpl-beta", headers=SAME_ORIGIN).status_code == 404
    moved = {"name": "mine now", "topic": "tenants/beta/set"}
    refused(tenant.put("/api/publish/templates/tmpl-acme", json=moved, headers=SAME_ORIGIN))
    refused(tenant.post("/api/publish/templates", json=moved, headers=SAME_ORIGIN))
    assert world.redis.hexists(KEY_PUBLISH_TEMPLATES, "tmpl-beta")
    assert json.loads(world.redis.hget(KEY_PUBLISH_TEMPLATES, "tmpl-acme"))["topic"] == f"{OURS}/set"
    assert world.bridge.received == []


def test_without_known_accounts_a_tenant_sees_no_client(world: TenantWorld) -> None:
    world.redis.set(KEY_TENANT_ACCOUNTS, dumps({"error": "the broker has no dynamic security"}))

    clients = get(world.tenant, "/api/clients").get_json()

    assert clients["clients"] == []
    assert "could not be read" in clients["error"]


# --- Socket.IO -------------------------------------------------------------------------------------
def tenant_socket(world: TenantWorld, **auth: Any) -> Any:
    return socket_client(world.app, world.tenant, auth=auth or None)


def test_the_tenants_snapshot_holds_only_its_own(world: TenantWorld) -> None:
    (snap,) = received(tenant_socket(world))["snapshot"]

    no_leak(json.dumps(snap))
    assert snap["stats"] is None
    assert snap["user"]["tenant"] == "acme" and snap["user"]["topic"] == f"{OURS}/#"
    assert {m["topic"] for m in snap["messages"]} == {f"{OURS}/temp"}
    assert [m["payload"] for m in snap["messages"]][-1] == "acme-newest"
    assert [t["topic"] for t in snap["topics"]["topics"]] == [f"{OURS}/temp"]
    assert [c["username"] for c in snap["clients"]["clients"]] == ["acme-dev"]
    assert set(snap["bridge"]) == {"online", "heartbeat_age", "redis"}


def test_a_tenant_user_cannot_watch_another_broker(world: TenantWorld) -> None:
    sio = tenant_socket(world, broker="plant-2")

    assert not sio.is_connected()


def test_the_live_stream_cannot_be_filtered_outside_the_tenant(world: TenantWorld) -> None:
    sio = tenant_socket(world)
    for topic_filter in OUTSIDE_FILTERS + MALFORMED:
        ack = sio.emit("set_filter", {"filter": topic_filter}, callback=True)
        assert ack["ok"] is False and ack["error"], topic_filter


def test_the_live_stream_and_every_event_carry_only_the_tenants_share(world: TenantWorld) -> None:
    found = services(world.app)
    tenant = tenant_socket(world)
    narrowed = tenant_socket(world)
    assert narrowed.emit("set_filter", {"filter": f"{OURS}/temp"}, callback=True) == {"ok": True}
    assert tenant.emit("set_filter", {"filter": "#"}, callback=True) == {"ok": True}  # all of acme's
    admin = socket_client(world.app, auth={"token": TOKEN})
    for sio in (tenant, narrowed, admin):
        received(sio)

    for topic in (f"{OURS}/temp", *OUTSIDE_TOPICS, f"{OURS}/temp"):
        found.relay.handle(CHANNEL_MESSAGES, dumps(message(topic, b"live")))
    found.relay.flush()
    for channel, raw in (
        (CHANNEL_TOPICS, world.redis.get(KEY_TOPICS_LATEST)),
        (CHANNEL_CLIENTS, world.redis.get(KEY_CLIENTS_LATEST)),
        (CHANNEL_STATS, world.redis.get(KEY_STATS_LATEST)),
        (CHANNEL_STATUS, world.redis.get(KEY_STATUS_LATEST)),
    ):
        found.relay.handle(channel, raw)
    found.relay.check_health()

    got, narrow, everything = received(tenant), received(narrowed), received(admin)
    no_leak(json.dumps(got))
    no_leak(json.dumps(narrow))
    assert [m["topic"] for f in got["mqtt_messages"] for m in f["messages"]] == [f"{OURS}/temp"] * 2
    assert [m["topic"] for f in narrow["mqtt_messages"] for m in f["messages"]] == [f"{OURS}/temp"] * 2
    assert "broker_stats" not in got
    assert [t["topic"] for t in got["topics_update"][0]["topics"]] == [f"{OURS}/temp"]
    assert [c["username"] for c in got["clients_update"][0]["clients"]] == ["acme-dev"]
    assert got["broker_status"][0]["connected"] is True
    assert set(got["bridge_health"][0]) == {"online", "heartbeat_age", "redis"}
    # ...while a socket without a tenant still gets everything (the cut is per socket)
    frames = everything["mqtt_messages"]
    assert sum(len(f["messages"]) + f["skipped"] for f in frames) == 7  # DASHBOARD_FRAME_MAX is 5 here
    assert "broker_stats" in everything and len(everything["clients_update"][0]["clients"]) == 3
