"""Helpers for the dashboard's unit tests: constants, event readers, fake Redis data, a fake bridge."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import (
    HEARTBEAT_TTL,
    HISTORY_FIELD,
    KEY_HEARTBEAT,
    KEY_HISTORY,
    Names,
    command_result,
    dumps,
    message_json,
    parse_command,
)
from dashboard.extensions import services
from dashboard.passwords import PasswordHasher

TOKEN = "unit-test-token"
PASSWORD = "unit-test-password"
ORIGIN = "http://localhost"  # Flask's test client sends requests to this host
BASE_ENV = {
    "DASHBOARD_TOKEN": TOKEN,
    # An explicit key skips the (deliberately slow) derivation in most tests.
    "DASHBOARD_SECRET_KEY": "unit-test-session-key",
    "DASHBOARD_COMMAND_TIMEOUT": "1",
    "DASHBOARD_FRAME_MAX": "5",
    "DASHBOARD_HISTORY_ON_CONNECT": "3",
}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SAME_ORIGIN = {"Origin": ORIGIN}
# Real scrypt, at a cost a unit test can afford (the default takes ~0.1 s per hash).
FAST_HASHER = PasswordHasher(n=2**4, r=1, p=1)
USER_PASSWORD = "correct horse battery"


def add_user(app: Flask, name: str, role: str, tenant: str | None = None, broker: str | None = None) -> None:
    services(app).users.add(name, USER_PASSWORD, role, tenant, broker)


def log_in_as(app: Flask, name: str, password: str = USER_PASSWORD, **environ: Any) -> FlaskClient:
    """A test client with a session of ``name`` (``environ``: e.g. REMOTE_ADDR)."""
    client = app.test_client()
    if environ:
        client.environ_base.update(environ)
    response = client.post("/api/login", json={"username": name, "password": password}, headers=SAME_ORIGIN)
    assert response.status_code == 200, response.get_json()
    return client


def socket_client(app: Flask, flask_client: FlaskClient | None = None, **options: Any) -> Any:
    """A Flask-SocketIO test client; pass ``auth=...`` or ``headers=...`` to authenticate.

    Always through a Flask test client, so the connect comes from an address (127.0.0.1) as a
    real one does, and counts against the same address as the client's REST requests.
    """
    flask_client = flask_client or app.test_client()
    return services(app).socketio.test_client(app, flask_test_client=flask_client, **options)


def received(sio: Any) -> dict[str, list[Any]]:
    """Every event the test client received since the last call: name -> list of data."""
    found: dict[str, list[Any]] = {}
    for item in sio.get_received():
        found.setdefault(item["name"], []).append(item["args"][0] if item["args"] else None)
    return found


def message(topic: str, payload: bytes = b"x", timestamp: float | None = None) -> dict[str, Any]:
    stamp = time.time() if timestamp is None else timestamp
    parsed: dict[str, Any] = json.loads(message_json(topic, payload, 0, False, stamp))
    return parsed


def add_history(client: Any, topic: str, payload: bytes = b"x") -> str:
    """Append one message to the history stream as the bridge does; returns its stream id."""
    entry_id: str = client.xadd(KEY_HISTORY, {HISTORY_FIELD: dumps(message(topic, payload))})
    return entry_id


def set_heartbeat(client: Any, age: float = 1.0, **fields: Any) -> None:
    """A heartbeat written ``age`` seconds ago, as Redis then holds it: with the rest of its
    TTL while it would still live; an older one is kept without a TTL (as if set by hand), so
    readers judge it by its stamp against Redis's clock."""
    body = {
        "type": "heartbeat",
        "timestamp": time.time() - age,
        "pid": 4242,
        "version": "0.1.0",
        "started_at": time.time() - 100,
        "counters": {"received": 10, "forwarded": 10},
        "broker": "localhost:1883",
        "topics": ["#"],
        **fields,
    }
    left = HEARTBEAT_TTL - age
    client.set(KEY_HEARTBEAT, dumps(body), px=int(left * 1000) if left > 0 else None)


class FakeBridge:
    """Answers commands on the command channel as the bridge would, from a thread.

    ``refuse`` makes every valid command fail with that error (``outcome``, if given, says it may
    have happened all the same); ``silent`` listens but never answers (a hung bridge).
    ``received`` holds the command bodies as sent.
    """

    def __init__(
        self,
        client: Any,
        *,
        refuse: str | None = None,
        silent: bool = False,
        names: Names | None = None,
        outcome: str | None = None,
    ):
        self.client = client
        self.names = names or Names()  # a named bridge listens on its own command channel
        self.refuse = refuse
        self.outcome = outcome
        self.silent = silent
        self.received: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeBridge:
        self._pubsub.subscribe(self.names.CHANNEL_COMMANDS)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            item = self._pubsub.get_message(timeout=0.05)
            if item is None:
                continue
            self.received.append(json.loads(item["data"]))
            if self.silent:
                continue
            try:
                command = parse_command(item["data"])
                result = command_result(
                    command.id, command.type, self.refuse is None, self.refuse, outcome=self.outcome
                )
            except InvalidCommand as exc:
                result = command_result(exc.command_id, exc.command, False, str(exc))
            self.client.publish(self.names.CHANNEL_RESULTS, dumps(result))
