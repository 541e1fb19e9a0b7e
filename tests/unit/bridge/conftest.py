from __future__ import annotations

import fakeredis
import pytest

from bridge.config import Settings


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def r(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"MQTT_TOPICS": "#", "HISTORY_MAXLEN": "1000"})
