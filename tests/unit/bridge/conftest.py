from __future__ import annotations

import threading
import time

import fakeredis
import pytest

from bridge.config import Settings
from bridge.contract import protocol
from bridge.group.role import GroupRole
from bridge.ingest.counters import Counters
from bridge.ingest.redis_sink import RedisSink
from bridge.insight.housekeeping import Housekeeper
from bridge.insight.status import BrokerStatus
from bridge.insight.topics import TopicIndex


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def r(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"MQTT_TOPICS": "#", "HISTORY_MAXLEN": "1000"})


def make_housekeeper(
    r: fakeredis.FakeRedis, group: GroupRole | None = None, names: protocol.Names | None = None
) -> Housekeeper:
    """A housekeeper over fakeredis with test settings (stats every second, nothing to restore),
    a bridge group's member when given its ``group`` role."""
    return Housekeeper(
        RedisSink(r, 100, names),
        Counters(),
        BrokerStatus("localhost:1883"),
        TopicIndex(),
        threading.Event(),
        stats_interval=1,
        started_at=time.time(),
        configured_topics=["#"],
        load_subscriptions=lambda: True,
        group=group,
    )
