"""Fixtures for the dashboard's unit tests: apps over fakeredis, test clients, a fake bridge.

No sockets and no monkeypatching: the Redis client is injected through ``create_app``, and
the relay is not started (tests drive its steps) unless a test builds one itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from dashboard import create_app
from dashboard.config import DashboardSettings
from dashboard.extensions import Services, services
from tests.unit.dashboard.fakes import BASE_ENV, FAST_HASHER, FakeBridge


@pytest.fixture
def redis_server() -> fakeredis.FakeServer:
    """Set ``connected = False`` on it to make Redis unreachable."""
    return fakeredis.FakeServer()


@pytest.fixture
def redis_client(redis_server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=redis_server, decode_responses=True)


@pytest.fixture
def make_app(redis_client: fakeredis.FakeRedis) -> Callable[..., Flask]:
    """Build an app over the shared fakeredis; keyword arguments override environment values."""

    def build(**env: str) -> Flask:
        settings = DashboardSettings.from_env({**BASE_ENV, **env})
        return create_app(settings, redis_client=redis_client, start_relay=False, password_hasher=FAST_HASHER)

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def dash(app: Flask) -> Services:
    return services(app)


@pytest.fixture
def bridge(redis_client: fakeredis.FakeRedis) -> Iterator[FakeBridge]:
    with FakeBridge(redis_client) as fake:
        yield fake
