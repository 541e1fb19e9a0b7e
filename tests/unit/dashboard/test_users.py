"""Named users (issue 26, point 1): passwords, the store, the login, the Users API, and a change
to a user ending their sessions and sockets."""

from __future__ import annotations

import json
from collections.abc import Callable

import fakeredis
import pytest
from flask import Flask

from bridge.contract.protocol import CHANNEL_SESSION_REVOKED, KEY_DASHBOARD_USERS, dumps, envelope
from dashboard.extensions import services
from dashboard.passwords import PasswordHasher, PasswordProblem, check_new_password
from dashboard.policy import ADMIN, OPERATOR, VIEWER
from dashboard.users import UserProblem, UserStore
from tests.unit.dashboard.fakes import (
    BEARER,
    FAST_HASHER,
    SAME_ORIGIN,
    USER_PASSWORD,
    add_user,
    log_in_as,
    received,
    socket_client,
)


def test_a_password_is_kept_only_as_a_salted_scrypt_hash() -> None:
    first, second = FAST_HASHER.hash("hunter2 but longer"), FAST_HASHER.hash("hunter2 but longer")

    assert first.startswith("scrypt$16$1$1$") and first != second  # a salt of its own each time
    assert "hunter2" not in first
    assert FAST_HASHER.verify("hunter2 but longer", first)
    assert not FAST_HASHER.verify("hunter2 but longe", first)
    for damaged in (None, "", "scrypt$16$1$1$!!$!!", "md5$x", first.replace("$16$", "$3$"), 42):
        assert not FAST_HASHER.verify("hunter2 but longer", damaged)


def test_the_default_cost_is_owasps_and_a_hash_keeps_its_own_cost() -> None:
    default = PasswordHasher()
    assert (default.n, default.r, default.p) == (2**14, 8, 5)  # OWASP's scrypt setting: 16 MiB
    # A hash made at another cost still verifies: it carries its parameters.
    assert default.verify("a password of mine", FAST_HASHER.hash("a password of mine"))


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("short", "at least 8"),
        (" padded password ", "spaces"),
        ("x" * 1025, "at most 1024"),
        (None, "string"),
    ],
)
def test_an_unusable_new_password_is_refused_in_words(password: object, words: str) -> None:
    with pytest.raises(PasswordProblem, match=words):
        check_new_password(password)


def test_the_store_refuses_bad_users_in_words(redis_client: fakeredis.FakeRedis) -> None:
    store = UserStore(redis_client, FAST_HASHER)
    store.add("alice", USER_PASSWORD, VIEWER)
    for args, words in (
        (("alice", USER_PASSWORD, VIEWER), "already exists"),
        (("bob smith", USER_PASSWORD, VIEWER), "a user name is"),
        (("bob", USER_PASSWORD, "root"), "role must be one of viewer, operator, admin"),
        (("bob", USER_PASSWORD, ADMIN, "acme"), "not an admin"),
        (("bob", USER_PASSWORD, VIEWER, "Acme!"), "a tenant name is"),
        (("bob", USER_PASSWORD, VIEWER, None, "Plant 1"), "broker must be"),
        (("bob", "short", VIEWER), "at least 8"),
    ):
        with pytest.raises(UserProblem, match=words):
            store.add(*args)
    assert [u.username for u in store.all()] == ["alice"]


def test_a_tenant_user_is_held_to_the_default_broker_unless_another_is_named(
    redis_client: fakeredis.FakeRedis,
) -> None:
    store = UserStore(redis_client, FAST_HASHER)

    assert store.add("t1", USER_PASSWORD, OPERATOR, "acme").broker == "default"
    assert store.add("t2", USER_PASSWORD, OPERATOR, "acme", "plant-2").broker == "plant-2"
    assert store.update("t1", tenant=None).broker is None  # no longer a tenant's, no longer held


def test_redis_holds_no_password(app: Flask, redis_client: fakeredis.FakeRedis) -> None:
    add_user(app, "alice", OPERATOR)

    record = json.loads(redis_client.hget(KEY_DASHBOARD_USERS, "alice"))
    assert USER_PASSWORD not in json.dumps(record)
    assert record["password"].startswith("scrypt$")


def test_a_user_logs_in_with_name_and_password(app: Flask) -> None:
    add_user(app, "alice", OPERATOR, tenant="acme")
    client = app.test_client()

    response = client.post(
        "/api/login", json={"username": "alice", "password": USER_PASSWORD}, headers=SAME_ORIGIN
    )

    assert response.status_code == 200
    session = client.get("/api/session").get_json()
    assert session["authenticated"] is True
    assert session["user"] == {
        "name": "alice",
        "role": OPERATOR,
        "tenant": "acme",
        "broker": "default",
        "topic": "tenants/acme/#",
        "named": True,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": "wrong password"},
        {"username": "nobody", "password": USER_PASSWORD},
        {"username": "alice", "password": 12345678},
        {"username": ["alice"], "password": USER_PASSWORD},
    ],
)
def test_a_wrong_name_or_password_is_one_answer(app: Flask, body: dict) -> None:
    add_user(app, "alice", OPERATOR)

    response = app.test_client().post("/api/login", json=body, headers=SAME_ORIGIN)

    assert response.status_code == 401
    assert response.get_json() == {"error": "wrong user name or password"}  # says not which


def test_a_disabled_user_cannot_log_in(app: Flask) -> None:
    add_user(app, "alice", OPERATOR)
    services(app).users.update("alice", disabled=True)

    response = app.test_client().post(
        "/api/login", json={"username": "alice", "password": USER_PASSWORD}, headers=SAME_ORIGIN
    )

    assert response.status_code == 401


def test_failed_logins_count_per_user_name_from_any_address(app: Flask) -> None:
    add_user(app, "alice", OPERATOR)
    body = {"username": "alice", "password": "wrong password"}
    for n in range(10):  # ten addresses, one guess each: the address limit never trips
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.0.0.{n}"
        assert client.post("/api/login", json=body, headers=SAME_ORIGIN).status_code == 401

    fresh = app.test_client()
    fresh.environ_base["REMOTE_ADDR"] = "10.0.1.1"
    right = {"username": "alice", "password": USER_PASSWORD}
    response = fresh.post("/api/login", json=right, headers=SAME_ORIGIN)

    assert response.status_code == 429
    assert "for this user name" in response.get_json()["error"]
    # another user from the same address is not held up
    add_user(app, "bob", VIEWER)
    assert (
        fresh.post(
            "/api/login", json={"username": "bob", "password": USER_PASSWORD}, headers=SAME_ORIGIN
        ).status_code
        == 200
    )


def test_the_token_login_and_bearer_still_work_as_the_bootstrap_admin(app: Flask) -> None:
    client = app.test_client()
    assert (
        client.post("/api/login", json={"token": "unit-test-token"}, headers=SAME_ORIGIN).status_code == 200
    )
    assert client.get("/api/session").get_json()["user"]["role"] == ADMIN
    assert app.test_client().get("/api/users", headers=BEARER).status_code == 200


def test_admins_manage_users_and_never_see_a_hash(app: Flask) -> None:
    admin = app.test_client()
    new = {"username": "carol", "password": USER_PASSWORD, "role": VIEWER}

    created = admin.post("/api/users", json=new, headers={**BEARER, **SAME_ORIGIN})
    listed = admin.get("/api/users", headers=BEARER)
    changed = admin.patch("/api/users/carol", json={"role": OPERATOR}, headers=BEARER)

    assert created.status_code == 201
    assert changed.get_json()["role"] == OPERATOR
    for answer in (created, listed, changed):
        text = answer.get_data(as_text=True)
        assert "scrypt" not in text and "stamp" not in text and USER_PASSWORD not in text
    assert [u["username"] for u in listed.get_json()["users"]] == ["carol"]
    assert admin.patch("/api/users/nobody", json={"role": VIEWER}, headers=BEARER).status_code == 404
    assert admin.patch("/api/users/carol", json={"name": "x"}, headers=BEARER).status_code == 400
    assert admin.delete("/api/users/carol", headers=BEARER).get_json() == {"deleted": "carol"}
    assert admin.delete("/api/users/carol", headers=BEARER).status_code == 404


@pytest.mark.parametrize(
    "change",
    [{"role": VIEWER}, {"password": "a brand new password"}, {"disabled": True}, {"tenant": "acme"}, None],
)
def test_a_change_to_a_user_ends_their_sessions_at_once(app: Flask, change: dict | None) -> None:
    add_user(app, "alice", OPERATOR)
    alice = log_in_as(app, "alice")
    assert alice.get("/api/subscriptions").status_code == 200
    admin = app.test_client()

    if change is None:
        admin.delete("/api/users/alice", headers=BEARER)
    else:
        assert admin.patch("/api/users/alice", json=change, headers=BEARER).status_code == 200

    assert alice.get("/api/subscriptions").status_code == 401
    assert alice.get("/api/session").get_json()["authenticated"] is False


def test_a_change_to_a_user_closes_their_sockets_on_every_worker(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    # Two apps over one Redis stand for two workers; the change is made on the first.
    first, second = make_app(), make_app()
    add_user(first, "alice", OPERATOR)
    add_user(first, "bob", OPERATOR)
    alice_here = socket_client(first, log_in_as(first, "alice"))
    alice_there = socket_client(second, log_in_as(second, "alice"))
    bob_there = socket_client(second, log_in_as(second, "bob"))
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL_SESSION_REVOKED)

    first.test_client().patch("/api/users/alice", json={"role": VIEWER}, headers=BEARER)
    announced = [pubsub.get_message(timeout=1) for _ in range(2)]
    for app in (first, second):  # each worker's relay hears the announcement
        for item in announced:
            if item is not None:
                services(app).relay.handle(item["channel"], item["data"])

    assert not alice_here.is_connected() and not alice_there.is_connected()
    assert bob_there.is_connected()
    pubsub.close()


def test_the_revocation_message_names_only_the_user(redis_client: fakeredis.FakeRedis, app: Flask) -> None:
    add_user(app, "alice", OPERATOR)
    sio = socket_client(app, log_in_as(app, "alice"))
    received(sio)

    services(app).relay.handle(CHANNEL_SESSION_REVOKED, dumps(envelope("user_revoked", user="someone-else")))

    assert sio.is_connected()


def test_a_user_changes_their_own_password_and_stays_logged_in_here_only(app: Flask) -> None:
    add_user(app, "alice", OPERATOR)
    here, elsewhere = log_in_as(app, "alice"), log_in_as(app, "alice")
    body = {"current_password": USER_PASSWORD, "new_password": "a brand new password"}

    wrong = here.post(
        "/api/session/password", json=body | {"current_password": "not it at all"}, headers=SAME_ORIGIN
    )
    changed = here.post("/api/session/password", json=body, headers=SAME_ORIGIN)

    assert wrong.status_code == 403
    assert changed.status_code == 200
    assert here.get("/api/subscriptions").status_code == 200
    assert elsewhere.get("/api/subscriptions").status_code == 401
    log_in_as(app, "alice", "a brand new password")
    bootstrap = app.test_client().post("/api/session/password", json=body, headers=BEARER)
    assert bootstrap.status_code == 400 and "DASHBOARD_TOKEN" in bootstrap.get_json()["error"]
