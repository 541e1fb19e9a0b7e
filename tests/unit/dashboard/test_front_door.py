"""The Host allow-list (DNS rebinding) and the trusted reverse proxy, as a browser would meet them."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.contract.errors import ConfigError
from bridge.contract.protocol import KEY_LOGIN_FAILURES_PREFIX
from dashboard.config import DashboardSettings
from tests.unit.dashboard.fakes import BASE_ENV, TOKEN


# --- DNS rebinding (issue 11, point 5) ---------------------------------------------------------------
def test_a_rebinding_page_cannot_publish_even_with_auth_off(make_app: Callable[..., Flask]) -> None:
    # The rebinding page's origin is its own domain: it controls Origin and Host alike.
    client = make_app(DASHBOARD_AUTH="off").test_client()
    evil = {"Host": "rebind.evil.example:8082", "Origin": "http://rebind.evil.example:8082"}

    response = client.post("/api/publish", json={"topic": "door/open"}, headers=evil)

    assert response.status_code == 400
    assert "DASHBOARD_ALLOWED_HOSTS" in response.get_json()["error"]
    assert client.get("/api/subscriptions", headers=evil).status_code == 400
    assert client.get("/", headers=evil).status_code == 400


def test_socket_io_requests_pass_the_host_check_too(make_app: Callable[..., Flask]) -> None:
    client = make_app(DASHBOARD_AUTH="off").test_client()

    refused = client.get("/socket.io/?EIO=4&transport=websocket", headers={"Host": "evil.example"})

    assert refused.status_code == 400
    assert "DASHBOARD_ALLOWED_HOSTS" in refused.get_json()["error"]


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:8082", "127.0.0.1:8082", "192.0.2.7", "[::1]:8082", "LOCALHOST.", "a.localhost"],
)
def test_localhost_and_ip_addresses_are_always_served(make_app: Callable[..., Flask], host: str) -> None:
    client = make_app(DASHBOARD_ALLOWED_HOSTS="dash.example.com").test_client()

    assert client.get("/health/live", headers={"Host": host}).status_code == 200


def test_by_default_this_machines_host_name_is_served(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()

    assert client.get("/health/live", headers={"Host": f"{socket.gethostname()}:8082"}).status_code == 200
    assert client.get("/health/live", headers={"Host": "other.example"}).status_code == 400


def test_allowed_hosts_exact_and_with_subdomains(make_app: Callable[..., Flask]) -> None:
    client = make_app(DASHBOARD_ALLOWED_HOSTS="dash.example.com, .corp.example").test_client()

    def status(host: str) -> int:
        return client.get("/health/live", headers={"Host": host}).status_code

    assert status("dash.example.com") == 200
    assert status("Dash.Example.Com:443") == 200
    assert status("corp.example") == 200
    assert status("a.b.corp.example") == 200
    assert status("example.com") == 400
    assert status("dash.example.com.evil.example") == 400
    assert status("evilcorp.example") == 400


def test_a_request_without_any_host_header_is_served(make_app: Callable[..., Flask]) -> None:
    # An HTTP/1.0 probe sends none; a browser (and so a rebinding page) always sends one.
    app = make_app(DASHBOARD_ALLOWED_HOSTS="dash.example.com")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/health/live", "SERVER_NAME": "127.0.0.1"}
    environ |= {"SERVER_PORT": "8082", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO()}
    statuses: list[str] = []

    body = b"".join(app.wsgi_app(environ, lambda status, headers: statuses.append(status)))

    assert statuses == ["200 OK"]
    assert b'"status":"ok"' in body


def test_a_star_serves_any_host(make_app: Callable[..., Flask]) -> None:
    client = make_app(DASHBOARD_ALLOWED_HOSTS="*").test_client()

    assert client.get("/health/live", headers={"Host": "anything.example"}).status_code == 200


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DASHBOARD_ALLOWED_HOSTS", "http://dash.example"),
        ("DASHBOARD_ALLOWED_HOSTS", "dash.example:8082"),
        ("DASHBOARD_ALLOWED_HOSTS", "*.example.com"),
        ("DASHBOARD_TRUSTED_PROXIES", "10.0.0.1, proxy.local"),
        ("DASHBOARD_TRUSTED_PROXIES", "10.0.0.0/33"),
    ],
)
def test_bad_host_or_proxy_settings_fail_at_start_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        DashboardSettings.from_env({**BASE_ENV, name: value})


# --- behind a reverse proxy (issue 11, point 4) --------------------------------------------------------
PROXY = "10.1.2.3"
FORWARDED = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "dash.example.com",
}


def _login_from_proxy(app: Flask, token: str) -> tuple[int, str]:
    client = app.test_client()
    response = client.post(
        "/api/login",
        json={"token": token},
        headers={**FORWARDED, "Origin": "https://dash.example.com"},
        environ_base={"REMOTE_ADDR": PROXY},
    )
    return response.status_code, response.headers.get("Set-Cookie", "")


def test_a_trusted_proxy_gives_the_client_address_scheme_and_host(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    app = make_app(DASHBOARD_TRUSTED_PROXIES="10.0.0.0/8", DASHBOARD_ALLOWED_HOSTS="dash.example.com")

    status, cookie = _login_from_proxy(app, TOKEN)
    assert status == 200
    assert "Secure" in cookie  # the page was served over https
    assert "HttpOnly" in cookie

    assert _login_from_proxy(app, "guess")[0] == 401
    # counted under the client's own address, not the proxy's (which everyone shares)
    assert redis_client.get(KEY_LOGIN_FAILURES_PREFIX + "203.0.113.9") == "1"
    assert redis_client.get(KEY_LOGIN_FAILURES_PREFIX + PROXY) is None


def test_forwarded_headers_from_anyone_else_are_ignored(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    app = make_app(DASHBOARD_TRUSTED_PROXIES="192.168.0.0/16", DASHBOARD_ALLOWED_HOSTS="*")
    client = app.test_client()
    # Host stays localhost (the real one), so the Origin of the forwarded host does not match.
    plain = {**FORWARDED, "Origin": "http://localhost"}

    response = client.post("/api/login", json={"token": "guess"}, headers=plain)
    assert response.status_code == 401
    ok = client.post("/api/login", json={"token": TOKEN}, headers=plain)

    assert "Secure" not in ok.headers["Set-Cookie"]  # X-Forwarded-Proto was not believed
    assert redis_client.get(KEY_LOGIN_FAILURES_PREFIX + "127.0.0.1") == "1"
    assert redis_client.get(KEY_LOGIN_FAILURES_PREFIX + "203.0.113.9") is None


def test_without_the_setting_no_forwarded_header_is_believed(
    make_app: Callable[..., Flask], redis_client: fakeredis.FakeRedis
) -> None:
    app = make_app(DASHBOARD_ALLOWED_HOSTS="*")

    status, _ = _login_from_proxy(app, "guess")

    # X-Forwarded-Host was ignored: Origin https://dash.example.com does not match Host localhost
    assert status == 403
    assert redis_client.get(KEY_LOGIN_FAILURES_PREFIX + "203.0.113.9") is None


def test_a_forwarded_host_must_be_allowed_too(make_app: Callable[..., Flask]) -> None:
    app = make_app(DASHBOARD_TRUSTED_PROXIES=PROXY, DASHBOARD_ALLOWED_HOSTS="other.example")

    assert _login_from_proxy(app, TOKEN)[0] == 400


def test_a_direct_https_request_gets_a_secure_cookie(client: FlaskClient) -> None:
    response = client.post(
        "/api/login",
        json={"token": TOKEN},
        headers={"Origin": "https://localhost"},
        base_url="https://localhost",
    )

    assert response.status_code == 200
    assert "Secure" in response.headers["Set-Cookie"]
