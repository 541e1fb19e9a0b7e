"""The audit trail (issue 26, point 4): who did what and when, bounded in Redis, filtered and
exported for admins, with no secret in it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.contract.protocol import KEY_AUDIT
from dashboard.audit import AuditLog
from dashboard.extensions import services
from dashboard.policy import ADMIN, OPERATOR, VIEWER
from tests.unit.dashboard.fakes import (
    BEARER,
    SAME_ORIGIN,
    TOKEN,
    USER_PASSWORD,
    FakeBridge,
    add_user,
    log_in_as,
)

SECRET_PAYLOAD = "door-code-4711"
NEW_PASSWORD = "another secret password"


@pytest.fixture
def bridge_up(redis_client: fakeredis.FakeRedis) -> Iterator[FakeBridge]:
    with FakeBridge(redis_client) as fake:
        yield fake


def trail(client: fakeredis.FakeRedis) -> list[dict]:
    return [json.loads(fields["data"]) for _, fields in client.xrange(KEY_AUDIT)]


def raw_trail(client: fakeredis.FakeRedis) -> str:
    return json.dumps(client.xrange(KEY_AUDIT))


def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client


def test_a_publish_is_recorded_with_who_what_and_where_but_not_its_payload(
    app: Flask, redis_client: fakeredis.FakeRedis, bridge_up: FakeBridge
) -> None:
    add_user(app, "olga", OPERATOR)
    olga = log_in_as(app, "olga")

    olga.post(
        "/api/publish", json={"topic": "door/open", "payload": SECRET_PAYLOAD, "qos": 1}, headers=SAME_ORIGIN
    )

    (entry,) = [e for e in trail(redis_client) if e["action"] == "publish"]
    assert entry["user"] == "olga" and entry["role"] == OPERATOR
    assert entry["outcome"] == "ok" and entry["status"] == 200 and entry["broker"] == "default"
    assert entry["detail"] == {"topic": "door/open", "qos": 1, "payload_chars": len(SECRET_PAYLOAD)}
    assert entry["address"] == "127.0.0.1" and entry["timestamp"] > 0
    assert SECRET_PAYLOAD not in raw_trail(redis_client)


def test_logins_and_refusals_are_recorded_without_a_password(
    app: Flask, redis_client: fakeredis.FakeRedis
) -> None:
    add_user(app, "vera", VIEWER)
    app.test_client().post(
        "/api/login", json={"username": "vera", "password": "not her password"}, headers=SAME_ORIGIN
    )
    vera = log_in_as(app, "vera")
    vera.post("/api/publish", json={"topic": "door/open"}, headers=SAME_ORIGIN)
    vera.post("/api/logout", headers=SAME_ORIGIN)
    app.test_client().post("/api/login", json={"token": "a guess"}, headers=SAME_ORIGIN)

    entries = [(e["action"], e["user"], e["outcome"], e["status"]) for e in trail(redis_client)]
    assert entries == [
        ("login", "vera", "denied", 401),
        ("login", "vera", "ok", 200),
        ("publish", "vera", "denied", 403),
        ("logout", "vera", "ok", 200),
        ("login", "(token or password)", "denied", 401),
    ]
    assert "needs the operator role" in trail(redis_client)[2]["error"]
    text = raw_trail(redis_client)
    for secret in ("not her password", USER_PASSWORD, "a guess", TOKEN):
        assert secret not in text


def test_a_login_link_is_recorded(app: Flask, redis_client: fakeredis.FakeRedis) -> None:
    typed = {"Sec-Fetch-Site": "none"}
    app.test_client().get(f"/?token={TOKEN}", headers=typed)
    app.test_client().get("/?token=wrong-token", headers=typed)

    assert [(e["user"], e["outcome"]) for e in trail(redis_client)] == [
        ("(bootstrap admin)", "ok"),
        ("(login link)", "denied"),
    ]
    assert "wrong-token" not in raw_trail(redis_client)


def test_user_connection_and_tenant_changes_are_recorded_without_secrets(
    app: Flask, redis_client: fakeredis.FakeRedis, bridge_up: FakeBridge
) -> None:
    boss = admin(app)
    boss.post("/api/users", json={"username": "ted", "password": NEW_PASSWORD, "role": VIEWER})
    boss.patch("/api/users/ted", json={"role": OPERATOR, "password": NEW_PASSWORD + "!"})
    boss.delete("/api/users/ted")
    boss.put("/api/broker/connection", json={"host": "127.0.0.1", "port": 1884, "password": None})
    boss.post("/api/tenants", json={"name": "acme"})

    entries = trail(redis_client)
    assert [e["action"] for e in entries] == [
        "user_create",
        "user_change",
        "user_delete",
        "connection_change",
        "tenant_create",
    ]
    assert all(e["user"] == "(bootstrap admin)" for e in entries)
    assert entries[0]["detail"] == {"username": "ted", "role": VIEWER, "password": "(given)"}
    assert entries[1]["detail"] == {"username": "ted", "role": OPERATOR, "password": "(given)"}
    assert entries[3]["detail"] == {"host": "127.0.0.1", "port": 1884, "password": "(none)"}
    assert entries[4]["detail"] == {"name": "acme"}
    assert NEW_PASSWORD not in raw_trail(redis_client)


def test_admins_read_the_trail_with_filters_and_pages(app: Flask, redis_client: fakeredis.FakeRedis) -> None:
    log = services(app).audit
    from dashboard.policy import Principal

    for n in range(5):
        log.record("publish", Principal("olga", OPERATOR), "ok", detail={"n": n})
        log.record("login", None, "denied", user="mallory")
    boss = admin(app)

    olga = boss.get("/api/audit?user=olga&limit=2").get_json()
    rest = boss.get(f"/api/audit?user=olga&limit=10&before={olga['next_before']}").get_json()
    denied = boss.get("/api/audit?outcome=denied").get_json()
    logins = boss.get("/api/audit?action=login&limit=3").get_json()
    later = boss.get("/api/audit?since=9999999999").get_json()

    assert [e["detail"]["n"] for e in olga["entries"] + rest["entries"]] == [4, 3, 2, 1, 0]
    assert rest["next_before"] is None
    assert {e["user"] for e in denied["entries"]} == {"mallory"} and len(denied["entries"]) == 5
    assert len(logins["entries"]) == 3
    assert later["entries"] == []
    assert boss.get("/api/audit?outcome=maybe").status_code == 400
    assert boss.get("/api/audit?since=yesterday").status_code == 400
    assert boss.get("/api/audit?before=abc").status_code == 400


def test_the_trail_exports_as_ndjson_and_csv_safe_for_a_spreadsheet(
    app: Flask, redis_client: fakeredis.FakeRedis
) -> None:
    # A user name someone typed at the login form may look like a formula.
    app.test_client().post(
        "/api/login", json={"username": "=HYPERLINK(1)", "password": "x" * 8}, headers=SAME_ORIGIN
    )
    app.test_client().post(
        "/api/login", json={"username": "nobody", "password": "y" * 8}, headers=SAME_ORIGIN
    )
    boss = admin(app)

    ndjson = boss.get("/api/audit?format=ndjson")
    table = boss.get("/api/audit?format=csv&action=login")

    assert ndjson.headers["Content-Disposition"].startswith('attachment; filename="dashboard-audit-')
    lines = [json.loads(line) for line in ndjson.get_data(as_text=True).splitlines()]
    assert [e["user"] for e in lines] == ["=HYPERLINK(1)", "nobody"]  # oldest first
    rows = list(csv.reader(io.StringIO(table.get_data(as_text=True))))
    assert rows[0][:3] == ["id", "timestamp", "user"]
    assert [r[2] for r in rows[1:]] == ["'=HYPERLINK(1)", "nobody"]
    assert boss.get("/api/audit?format=xml").status_code == 400


def test_only_admins_read_the_trail(app: Flask) -> None:
    add_user(app, "olga", OPERATOR)
    assert log_in_as(app, "olga").get("/api/audit").status_code == 403
    assert app.test_client().get("/api/audit", headers=BEARER).status_code == 200


def test_the_trail_is_bounded(redis_client: fakeredis.FakeRedis) -> None:
    log = AuditLog(redis_client, maxlen=50)
    for n in range(400):
        log.record("publish", None, "ok", user=f"u{n}")

    # MAXLEN ~ trims whole nodes (100 entries in Redis): bounded, if not exactly at 50
    assert redis_client.xlen(KEY_AUDIT) <= 150
    assert json.loads(redis_client.xrevrange(KEY_AUDIT, count=1)[0][1]["data"])["user"] == "u399"


def test_a_trail_that_cannot_be_written_does_not_hide_what_happened(
    app: Flask, redis_client: fakeredis.FakeRedis, bridge_up: FakeBridge
) -> None:
    redis_client.set(KEY_AUDIT, "not a stream")  # XADD fails with WRONGTYPE
    add_user(app, "olga", ADMIN)

    response = log_in_as(app, "olga").post("/api/publish", json={"topic": "a"}, headers=SAME_ORIGIN)

    assert response.status_code == 200
