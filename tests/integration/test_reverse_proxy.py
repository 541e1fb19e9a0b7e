"""The real dashboard (Gunicorn, gevent) as a TLS-terminating reverse proxy presents it.

The test plays the proxy: it connects from 127.0.0.1 and sends what nginx sends
(``Host``, ``X-Forwarded-For/-Proto/-Host``), and a browser's ``Origin`` on the WebSocket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
import websocket

from bridge.contract.protocol import KEY_LOGIN_FAILURES_PREFIX
from tests.helpers import DashboardProcess, Process, start_redis

pytestmark = pytest.mark.integration

TOKEN = "proxy-test-token"
PUBLIC = "dash.example.com"


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reverse-proxy")


@pytest.fixture(scope="module")
def redis_proc(stack_dir: Path) -> Iterator[Process]:
    proc = start_redis(stack_dir)
    yield proc
    proc.stop()


def _dashboard(stack_dir: Path, redis_proc: Process, **settings: str) -> Iterator[DashboardProcess]:
    proc = DashboardProcess(
        stack_dir,
        redis_proc.port,
        workers=1,
        DASHBOARD_TOKEN=TOKEN,
        DASHBOARD_ALLOWED_HOSTS=PUBLIC,
        **settings,
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def behind_proxy(stack_dir: Path, redis_proc: Process) -> Iterator[DashboardProcess]:
    yield from _dashboard(stack_dir, redis_proc, DASHBOARD_TRUSTED_PROXIES="127.0.0.1")


@pytest.fixture(scope="module")
def no_proxy_setting(stack_dir: Path, redis_proc: Process) -> Iterator[DashboardProcess]:
    yield from _dashboard(stack_dir, redis_proc)


def socket_answer(dashboard: DashboardProcess, headers: list[str], host: str | None, origin: str) -> str:
    """Open the Socket.IO WebSocket as a browser behind the proxy would; returns ``"connected"``
    (the connect ack or the snapshot, which the server may send first), the refusal (``44...``)
    or the handshake's HTTP error."""
    url = f"ws://127.0.0.1:{dashboard.port}/socket.io/?EIO=4&transport=websocket"
    try:
        ws = websocket.create_connection(url, header=headers, host=host, origin=origin, timeout=10)
    except websocket.WebSocketBadStatusException as exc:
        return f"HTTP {exc.status_code}"
    try:
        assert ws.recv().startswith("0")  # Engine.IO open
        ws.send("40" + json.dumps({"token": TOKEN}))
        while True:
            frame = ws.recv()
            if isinstance(frame, str) and frame.startswith(("40", '42["snapshot"')):
                return "connected"
            if isinstance(frame, str) and frame.startswith("44"):
                return frame
    finally:
        ws.close()


def test_a_socket_through_a_tls_proxy_that_forwards_only_the_host_connects(
    no_proxy_setting: DashboardProcess,
) -> None:
    # nginx with `proxy_set_header Host $host` but no X-Forwarded-Proto: the browser's origin is
    # https://, the dashboard sees plain http. REST worked here; the socket used to be refused.
    answer = socket_answer(no_proxy_setting, [], host=PUBLIC, origin=f"https://{PUBLIC}")

    assert answer == "connected"


def test_a_trusted_proxy_forwards_scheme_and_host_to_the_socket_check(behind_proxy: DashboardProcess) -> None:
    forwarded = [f"X-Forwarded-Host: {PUBLIC}", "X-Forwarded-Proto: https", "X-Forwarded-For: 198.51.100.4"]

    answer = socket_answer(behind_proxy, forwarded, host=None, origin=f"https://{PUBLIC}")

    assert answer == "connected"


def test_an_untrusted_sender_cannot_forward_a_host(no_proxy_setting: DashboardProcess) -> None:
    forwarded = [f"X-Forwarded-Host: {PUBLIC}", "X-Forwarded-Proto: https"]

    # the Host it really asked for is 127.0.0.1:port, which the Origin does not name
    answer = socket_answer(no_proxy_setting, forwarded, host=None, origin=f"https://{PUBLIC}")

    assert answer == "HTTP 400"


def test_a_rebinding_host_is_refused_on_the_socket_and_on_rest(no_proxy_setting: DashboardProcess) -> None:
    evil = "rebind.evil.example"

    assert socket_answer(no_proxy_setting, [], host=evil, origin=f"http://{evil}") == "HTTP 400"
    response = requests.get(f"{no_proxy_setting.url}/api/session", headers={"Host": evil}, timeout=10)
    assert response.status_code == 400
    assert "DASHBOARD_ALLOWED_HOSTS" in response.json()["error"]


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure_and_failures_count_per_client(
    behind_proxy: DashboardProcess, redis_proc: Process
) -> None:
    forwarded = {"X-Forwarded-Host": PUBLIC, "X-Forwarded-Proto": "https", "Origin": f"https://{PUBLIC}"}
    url = f"{behind_proxy.url}/api/login"

    ok = requests.post(
        url, json={"token": TOKEN}, headers={**forwarded, "X-Forwarded-For": "198.51.100.7"}, timeout=10
    )
    wrong = requests.post(
        url, json={"token": "x"}, headers={**forwarded, "X-Forwarded-For": "198.51.100.8"}, timeout=10
    )

    assert ok.status_code == 200
    assert "Secure" in ok.headers["Set-Cookie"]
    assert wrong.status_code == 401
    r = redis.Redis(port=redis_proc.port)
    assert r.get(KEY_LOGIN_FAILURES_PREFIX + "198.51.100.8") == b"1"
    assert r.get(KEY_LOGIN_FAILURES_PREFIX + "127.0.0.1") is None
