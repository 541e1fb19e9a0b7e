"""Logging in and staying out: tokens, passwords, cookies, Bearer headers, CSRF, Socket.IO."""

from __future__ import annotations

from collections.abc import Callable

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.contract.protocol import (
    CHANNEL_SESSION_REVOKED,
    KEY_DASHBOARD_SESSION_PREFIX,
    KEY_LOGIN_FAILURES_PREFIX,
)
from dashboard.extensions import services
from tests.helpers import wait_for
from tests.unit.dashboard.fakes import BEARER, ORIGIN, PASSWORD, TOKEN, received, socket_client

SAME_ORIGIN = {"Origin": ORIGIN}


def log_in(client: FlaskClient, **body: str) -> int:
    return client.post("/api/login", json=body, headers=SAME_ORIGIN).status_code


def test_the_session_route_tells_the_ui_what_to_show(client: FlaskClient) -> None:
    response = client.get("/api/session")

    assert response.status_code == 200
    assert response.get_json() == {"authenticated": False, "auth": "token", "users": False}


def test_api_routes_need_a_login(client: FlaskClient) -> None:
    for path in ("/api/topics", "/api/messages", "/api/subscriptions", "/api/export", "/metrics"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "not logged in" in response.get_json()["error"]


def test_health_needs_no_login(client: FlaskClient) -> None:
    assert client.get("/health").status_code == 503  # answers (degraded: no bridge), not 401


def test_a_bearer_token_opens_the_api(client: FlaskClient) -> None:
    assert client.get("/api/subscriptions", headers=BEARER).status_code == 200
    assert client.get("/api/subscriptions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/subscriptions", headers={"Authorization": TOKEN}).status_code == 401


def test_login_with_the_token_sets_a_strict_httponly_cookie(client: FlaskClient) -> None:
    response = client.post("/api/login", json={"token": TOKEN}, headers=SAME_ORIGIN)

    assert response.status_code == 200
    assert response.get_json()["authenticated"] is True
    assert response.get_json()["user"]["role"] == "admin"  # the token is the bootstrap admin
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert TOKEN not in cookie
    session = client.get("/api/session").get_json()
    assert session["authenticated"] is True and session["auth"] == "token"
    assert client.get("/api/subscriptions").status_code == 200


def test_a_wrong_token_is_refused(client: FlaskClient) -> None:
    response = client.post("/api/login", json={"token": "guess"}, headers=SAME_ORIGIN)

    assert response.status_code == 401
    assert response.get_json() == {"error": "wrong token or password"}
    assert "Set-Cookie" not in response.headers
    assert client.get("/api/subscriptions").status_code == 401


@pytest.mark.parametrize("body", [{}, {"token": 123}, {"token": ""}, {"password": None}])
def test_a_login_without_a_usable_secret_is_refused(client: FlaskClient, body: dict) -> None:
    assert client.post("/api/login", json=body, headers=SAME_ORIGIN).status_code == 401


def test_logout_ends_the_session(client: FlaskClient) -> None:
    log_in(client, token=TOKEN)

    response = client.post("/api/logout", headers=SAME_ORIGIN)

    assert response.get_json() == {"authenticated": False}
    assert client.get("/api/subscriptions").status_code == 401


# What Chromium sends for an address typed, pasted or opened from the terminal.
TYPED = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


def test_the_login_link_trades_the_token_for_a_cookie_and_hides_it(client: FlaskClient) -> None:
    response = client.get(f"/?token={TOKEN}", headers=TYPED)

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert client.get("/api/session").get_json()["authenticated"] is True


def test_a_wrong_login_link_logs_nobody_in(client: FlaskClient) -> None:
    response = client.get("/?token=nope", headers=TYPED)

    assert response.status_code == 303
    assert "login=failed" in response.headers["Location"]
    assert client.get("/api/session").get_json()["authenticated"] is False


def test_a_password_works_as_login_and_as_bearer(make_app: Callable[..., Flask]) -> None:
    app = make_app(DASHBOARD_TOKEN="", DASHBOARD_PASSWORD=PASSWORD)
    client = app.test_client()

    assert client.get("/api/session").get_json()["auth"] == "password"
    assert client.get("/api/topics", headers={"Authorization": f"Bearer {PASSWORD}"}).status_code == 503
    assert log_in(client, password="wrong") == 401
    assert log_in(client, password=PASSWORD) == 200
    assert client.get("/api/subscriptions").status_code == 200


def test_a_cookie_stops_working_when_the_token_changes(make_app: Callable[..., Flask]) -> None:
    old = make_app(DASHBOARD_SECRET_KEY="")
    client = old.test_client()
    log_in(client, token=TOKEN)
    cookie = client.get_cookie("mqtt_dashboard_session")
    assert cookie is not None

    rotated = make_app(DASHBOARD_SECRET_KEY="", DASHBOARD_TOKEN="a-new-token").test_client()
    rotated.set_cookie("mqtt_dashboard_session", cookie.value)

    assert rotated.get("/api/subscriptions").status_code == 401


def test_a_cookie_from_one_worker_works_on_another(make_app: Callable[..., Flask]) -> None:
    # Two apps with the same configuration stand for two Gunicorn workers.
    first = make_app(DASHBOARD_SECRET_KEY="").test_client()
    log_in(first, token=TOKEN)
    cookie = first.get_cookie("mqtt_dashboard_session")
    assert cookie is not None

    second = make_app(DASHBOARD_SECRET_KEY="").test_client()
    second.set_cookie("mqtt_dashboard_session", cookie.value)

    assert second.get("/api/subscriptions").status_code == 200


# --- CSRF ------------------------------------------------------------------------------------------
def test_a_cross_origin_post_with_the_cookie_is_refused(client: FlaskClient) -> None:
    log_in(client, token=TOKEN)

    response = client.post("/api/publish", json={"topic": "a"}, headers={"Origin": "https://evil.example"})

    assert response.status_code == 403
    assert "cross-origin" in response.get_json()["error"]


def test_a_cookie_post_without_origin_or_referer_is_refused(client: FlaskClient) -> None:
    log_in(client, token=TOKEN)

    assert client.post("/api/publish", json={"topic": "a"}).status_code == 403
    assert client.delete("/api/subscriptions/a").status_code == 403


def test_a_same_origin_referer_is_enough(client: FlaskClient) -> None:
    log_in(client, token=TOKEN)

    response = client.post("/api/publish", json={"topic": "a"}, headers={"Referer": f"{ORIGIN}/publish"})

    assert response.status_code == 504  # got through to the (absent) bridge


def test_a_cross_origin_login_is_refused(client: FlaskClient) -> None:
    response = client.post("/api/login", json={"token": TOKEN}, headers={"Origin": "http://evil.example"})

    assert response.status_code == 403


def test_bearer_requests_need_no_origin(client: FlaskClient) -> None:
    assert client.post("/api/publish", json={"topic": "a"}, headers=BEARER).status_code == 504


def test_with_auth_off_everything_is_open_but_csrf_still_applies(make_app: Callable[..., Flask]) -> None:
    client = make_app(DASHBOARD_AUTH="off").test_client()

    session = client.get("/api/session").get_json()
    assert session["authenticated"] is True and session["auth"] == "off"
    assert session["user"]["role"] == "admin"
    assert client.get("/api/subscriptions").status_code == 200
    assert client.post("/api/publish", json={"topic": "a"}, headers=SAME_ORIGIN).status_code == 504
    assert (
        client.post("/api/publish", json={"topic": "a"}, headers={"Origin": "http://x.example"}).status_code
        == 403
    )


def test_auth_off_is_logged_as_a_warning(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    make_app(DASHBOARD_AUTH="off")

    assert any(r.levelname == "WARNING" and "DASHBOARD_AUTH is off" in r.message for r in caplog.records)


def test_the_token_never_appears_in_answers_or_logs(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    answers = [
        client.get("/api/session"),
        client.post("/api/login", json={"token": TOKEN}, headers=SAME_ORIGIN),
        client.get("/health"),
        client.get("/metrics"),
        client.post("/api/publish", json={"topic": "a"}, headers=BEARER),
    ]

    assert all(TOKEN not in r.get_data(as_text=True) for r in answers)
    assert TOKEN not in caplog.text


# --- Socket.IO -----------------------------------------------------------------------------------------
def test_a_socket_without_auth_is_refused(app: Flask) -> None:
    assert not socket_client(app).is_connected()
    assert not socket_client(app, auth={"token": "wrong"}).is_connected()
    assert not socket_client(app, headers={"Authorization": "Bearer wrong"}).is_connected()


def test_a_socket_with_the_token_gets_its_snapshot(app: Flask) -> None:
    sio = socket_client(app, auth={"token": TOKEN})

    assert sio.is_connected()
    assert len(received(sio)["snapshot"]) == 1


def test_a_socket_may_authenticate_with_a_bearer_header(app: Flask) -> None:
    assert socket_client(app, headers=BEARER).is_connected()


def test_a_socket_may_authenticate_with_the_session_cookie(app: Flask) -> None:
    client = app.test_client()
    log_in(client, token=TOKEN)

    assert socket_client(app, client).is_connected()


def test_a_socket_with_auth_off_needs_nothing(make_app: Callable[..., Flask]) -> None:
    app = make_app(DASHBOARD_AUTH="off")

    assert socket_client(app).is_connected()


def test_ten_failed_logins_block_that_address_on_every_worker_for_a_minute(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    for _ in range(10):
        assert client.post("/api/login", json={"token": "guess"}, headers=SAME_ORIGIN).status_code == 401
    blocked = client.post("/api/login", json={"token": TOKEN}, headers=SAME_ORIGIN)
    assert blocked.status_code == 429
    assert "too many failed logins" in blocked.get_json()["error"]
    # kept in Redis (every worker sees it), and it expires by itself
    assert 0 < redis_client.ttl(KEY_LOGIN_FAILURES_PREFIX + "127.0.0.1") <= 60
    redis_client.delete(KEY_LOGIN_FAILURES_PREFIX + "127.0.0.1")
    assert client.post("/api/login", json={"token": TOKEN}, headers=SAME_ORIGIN).status_code == 200


# --- every credential counts (issue 11, point 1) ------------------------------------------------------
def test_wrong_bearer_tokens_count_and_then_even_the_right_one_is_refused(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    for _ in range(10):
        assert client.get("/api/subscriptions", headers={"Authorization": "Bearer guess"}).status_code == 401

    blocked = client.get("/api/subscriptions", headers=BEARER)

    assert blocked.status_code == 429
    assert "too many failed logins" in blocked.get_json()["error"]
    assert int(redis_client.get(KEY_LOGIN_FAILURES_PREFIX + "127.0.0.1")) == 10


def test_an_address_the_form_blocked_cannot_go_on_with_bearer_or_socket(app: Flask) -> None:
    client = app.test_client()
    for _ in range(10):
        log_in(client, token="guess")

    assert client.get("/api/subscriptions", headers=BEARER).status_code == 429
    assert client.post("/api/publish", json={"topic": "a"}, headers=BEARER).status_code == 429
    assert not socket_client(app, auth={"token": TOKEN}).is_connected()
    assert not socket_client(app, headers=BEARER).is_connected()


def test_wrong_socket_tokens_count_against_the_form_too(app: Flask) -> None:
    for _ in range(5):
        assert not socket_client(app, auth={"token": "guess"}).is_connected()
    for _ in range(5):
        assert not socket_client(app, headers={"Authorization": "Bearer guess"}).is_connected()

    assert log_in(app.test_client(), token=TOKEN) == 429
    assert not socket_client(app, auth={"token": TOKEN}).is_connected()


def test_a_bearer_guess_on_an_open_route_is_counted_too(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    # /api/session reports whether the header is valid, and a POST's CSRF exemption depends on it:
    # both check the token, so both count.
    assert (
        client.get("/api/session", headers={"Authorization": "Bearer guess"}).get_json()["authenticated"]
        is False
    )
    client.post("/api/logout", headers={"Authorization": "Bearer guess"})

    assert int(redis_client.get(KEY_LOGIN_FAILURES_PREFIX + "127.0.0.1")) == 2


def test_requests_without_a_credential_are_not_counted(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    for _ in range(20):
        assert client.get("/api/subscriptions").status_code == 401

    assert redis_client.get(KEY_LOGIN_FAILURES_PREFIX + "127.0.0.1") is None
    assert client.get("/api/subscriptions", headers=BEARER).status_code == 200


def test_a_success_does_not_wipe_the_count_of_failures(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    # Behind one shared address, a guesser interleaving with a working client stays limited.
    for _ in range(5):
        client.get("/api/subscriptions", headers={"Authorization": "Bearer guess"})
        assert client.get("/api/subscriptions", headers=BEARER).status_code == 200
    for _ in range(5):
        client.get("/api/subscriptions", headers={"Authorization": "Bearer guess"})

    assert client.get("/api/subscriptions", headers=BEARER).status_code == 429


# --- other sites cannot lock anyone out (issue 11, point 2) ------------------------------------------
CROSS_SITE_IMAGE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}


@pytest.mark.parametrize(
    "headers",
    [
        CROSS_SITE_IMAGE,
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
        {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
        {},  # no Sec-Fetch-Site: cannot be told apart from another site's request
    ],
)
def test_a_login_link_another_site_triggers_is_neither_counted_nor_checked(
    client: FlaskClient, redis_client: fakeredis.FakeRedis, headers: dict[str, str]
) -> None:
    for _ in range(20):
        response = client.get("/?token=x", headers=headers)
        assert response.status_code == 303
        assert response.headers["Location"] == "/?login=unchecked"

    assert redis_client.get(KEY_LOGIN_FAILURES_PREFIX + "127.0.0.1") is None
    assert log_in(client, token=TOKEN) == 200  # the user is not locked out
    # and it is no free guess either: the right token from another site does not log in
    fresh = client.application.test_client()
    fresh.get(f"/?token={TOKEN}", headers=headers)
    assert fresh.get("/api/session").get_json()["authenticated"] is False


def test_a_login_link_from_our_own_page_is_checked_and_counted(
    client: FlaskClient, redis_client: fakeredis.FakeRedis
) -> None:
    same = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}

    assert client.get("/?token=nope", headers=same).headers["Location"] == "/?login=failed"
    assert int(redis_client.get(KEY_LOGIN_FAILURES_PREFIX + "127.0.0.1")) == 1
    assert client.get(f"/?token={TOKEN}", headers=same).headers["Location"] == "/"


# --- sessions that really end (issue 11, point 3) -----------------------------------------------------
def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("mqtt_dashboard_session")
    assert cookie is not None
    return cookie.value


def test_a_copied_cookie_is_worthless_after_logout(app: Flask) -> None:
    client = app.test_client()
    log_in(client, token=TOKEN)
    copied = _cookie(client)

    assert client.post("/api/logout", headers=SAME_ORIGIN).status_code == 200

    thief = app.test_client()
    thief.set_cookie("mqtt_dashboard_session", copied)
    assert thief.get("/api/session").get_json()["authenticated"] is False
    assert thief.get("/api/subscriptions").status_code == 401
    assert not socket_client(app, thief).is_connected()


def test_logout_on_one_worker_ends_the_session_on_every_worker(make_app: Callable[..., Flask]) -> None:
    first, second = make_app().test_client(), make_app().test_client()
    log_in(first, token=TOKEN)
    second.set_cookie("mqtt_dashboard_session", _cookie(first))
    assert second.get("/api/subscriptions").status_code == 200

    first.post("/api/logout", headers=SAME_ORIGIN)

    assert second.get("/api/subscriptions").status_code == 401


def test_a_session_lives_in_redis_with_a_ttl_and_without_secrets(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    client = make_app(DASHBOARD_SESSION_TTL="3600").test_client()
    log_in(client, token=TOKEN)

    keys = redis_client.keys(KEY_DASHBOARD_SESSION_PREFIX + "*")
    assert len(keys) == 1
    assert 3590 < redis_client.ttl(keys[0]) <= 3600
    stored = keys[0] + redis_client.get(keys[0])
    assert TOKEN not in stored
    assert _cookie(client) not in stored  # nor anything that would rebuild the cookie
    # deleting the key (what logout does) ends the session
    redis_client.delete(keys[0])
    assert client.get("/api/subscriptions").status_code == 401


def test_a_new_token_revokes_every_session_even_with_a_fixed_secret_key(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app().test_client()
    log_in(client, token=TOKEN)

    rotated = make_app(DASHBOARD_TOKEN="a-new-token").test_client()
    rotated.set_cookie("mqtt_dashboard_session", _cookie(client))

    assert rotated.get("/api/subscriptions").status_code == 401


def test_each_login_gets_a_new_session_and_ends_the_one_before(app: Flask) -> None:
    client = app.test_client()
    log_in(client, token=TOKEN)
    before = _cookie(client)

    log_in(client, token=TOKEN)

    assert _cookie(client) != before
    old = app.test_client()
    old.set_cookie("mqtt_dashboard_session", before)
    assert old.get("/api/subscriptions").status_code == 401
    assert client.get("/api/subscriptions").status_code == 200


def test_with_redis_down_a_cookie_gets_503_not_a_login(
    client: FlaskClient, redis_server: fakeredis.FakeServer
) -> None:
    log_in(client, token=TOKEN)
    redis_server.connected = False

    response = client.get("/api/subscriptions")

    assert response.status_code == 503
    assert "not reachable" in response.get_json()["error"]


def test_logout_closes_the_sessions_open_sockets_on_every_worker(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    first, second = make_app(), make_app()  # two workers
    browser = second.test_client()
    log_in(browser, token=TOKEN)
    with_cookie = socket_client(second, browser)
    with_token = socket_client(second, auth={"token": TOKEN})
    assert with_cookie.is_connected() and with_token.is_connected()
    notices = redis_client.pubsub(ignore_subscribe_messages=True)
    notices.subscribe(CHANNEL_SESSION_REVOKED)

    elsewhere = first.test_client()
    elsewhere.set_cookie("mqtt_dashboard_session", _cookie(browser))
    elsewhere.post("/api/logout", headers=SAME_ORIGIN)
    notice = wait_for(lambda: notices.get_message(timeout=0.05), 2, what="the revocation notice")
    services(second).relay.handle(notice["channel"], notice["data"])  # what the second worker's relay gets

    assert not with_cookie.is_connected()
    assert with_token.is_connected()  # not that session's
    notices.close()
