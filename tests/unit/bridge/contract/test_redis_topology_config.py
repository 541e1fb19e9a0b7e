"""REDIS_SENTINELS / REDIS_SENTINEL_MASTER / REDIS_CLUSTER: read, checked, refused in one line.

And the forwarding script's keys: in one Redis Cluster hash slot, under the names they always had.
"""

from __future__ import annotations

import json
import threading
from collections import deque

import fakeredis
import pytest
from redis.crc import key_slot
from redis.exceptions import ClusterDownError, RedisClusterException, TryAgainError

from bridge.config import Settings
from bridge.contract import protocol, redis_topology
from bridge.contract.backoff import NoWait
from bridge.contract.env import RedisSettings
from bridge.contract.errors import ConfigError
from bridge.ingest.counters import Counters
from bridge.ingest.redis_sink import RedisSink, mark_key_for
from bridge.ingest.writer import Writer
from bridge.insight.topics import TopicIndex


def test_sentinel_settings_are_read_with_password_and_database() -> None:
    s = RedisSettings.from_env(
        {
            "REDIS_SENTINELS": "s1:26379, s2 ,[::1]:26380",
            "REDIS_SENTINEL_MASTER": "main",
            "REDIS_PASSWORD": "s3cret-master",
            "REDIS_SENTINEL_PASSWORD": "s3cret-sentinel",
            "REDIS_DB": "3",
        }
    )
    assert s.mode == "sentinel"
    assert s.sentinels == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (s.sentinel_master, s.password, s.sentinel_password, s.db) == (
        "main",
        "s3cret-master",
        "s3cret-sentinel",
        3,
    )
    assert s.where == "sentinel main@s1:26379,s2:26379,[::1]:26380/3"
    assert "s3cret" not in repr(s) and "s3cret" not in s.where


def test_cluster_seed_nodes_come_from_redis_url_and_hide_the_password() -> None:
    s = RedisSettings.from_env({"REDIS_CLUSTER": "true", "REDIS_URL": "redis://:s3cret@n1:7000,n2:7001,n3"})
    assert s.mode == "cluster"
    assert s.seeds == (("n1", 7000), ("n2", 7001), ("n3", 6379))
    assert s.where == "cluster n1:7000,n2:7001,n3:6379"
    assert "s3cret" not in repr(s) and "s3cret" not in s.where


def test_cluster_seed_node_from_host_and_port() -> None:
    s = RedisSettings.from_env({"REDIS_CLUSTER": "yes", "REDIS_HOST": "cache", "REDIS_PORT": "7000"})
    assert (s.mode, s.seeds, s.where) == ("cluster", (("cache", 7000),), "cluster cache:7000")


def test_unset_is_todays_standalone_redis() -> None:
    s = RedisSettings.from_env({})
    assert (s.mode, s.url, s.where) == ("standalone", "redis://localhost:6379/0", "localhost:6379/0")


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"REDIS_CLUSTER": "true", "REDIS_DB": "2"},
            "REDIS_DB must be 0 with REDIS_CLUSTER=true: a Redis Cluster has only database 0",
        ),
        (
            {"REDIS_CLUSTER": "true", "REDIS_URL": "redis://n1:7000/4"},
            "REDIS_DB must be 0 with REDIS_CLUSTER=true: a Redis Cluster has only database 0",
        ),
        (
            {"REDIS_CLUSTER": "true", "REDIS_URL": "redis://n1:7000", "REDIS_DB": "1"},
            "REDIS_DB must be 0 with REDIS_CLUSTER=true: a Redis Cluster has only database 0",
        ),
        ({"REDIS_CLUSTER": "sometimes"}, "REDIS_CLUSTER must be on/true or off/false, got 'sometimes'"),
        (
            {"REDIS_SENTINELS": "s1:26379"},
            "REDIS_SENTINEL_MASTER must be set with REDIS_SENTINELS (the master's name there)",
        ),
        (
            {"REDIS_SENTINELS": "s1:26379", "REDIS_SENTINEL_MASTER": "m", "REDIS_CLUSTER": "true"},
            "REDIS_SENTINELS and REDIS_CLUSTER=true exclude each other: set one",
        ),
        (
            {"REDIS_SENTINELS": "s1:26379", "REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://x:1/0"},
            "REDIS_URL and REDIS_SENTINELS exclude each other: with Sentinel, give REDIS_PASSWORD",
        ),
        (
            {"REDIS_SENTINELS": "s1:port", "REDIS_SENTINEL_MASTER": "m"},
            "REDIS_SENTINELS has a port that is not",
        ),
        (
            {"REDIS_SENTINELS": "s1:0", "REDIS_SENTINEL_MASTER": "m"},
            "REDIS_SENTINELS has a port outside 1-65535",
        ),
        ({"REDIS_SENTINELS": " , ", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS names no host:port"),
        (
            {"REDIS_CLUSTER": "true", "REDIS_URL": "unix:///run/redis.sock"},
            "REDIS_URL must name host:port seed nodes with REDIS_CLUSTER=true",
        ),
    ],
)
def test_a_bad_topology_setting_is_one_line_naming_the_variable(env: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert line in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_bad_seed_list_never_echoes_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        RedisSettings.from_env({"REDIS_CLUSTER": "true", "REDIS_URL": "redis://:s3cret@n1:7000,n2:x"})
    assert "s3cret" not in str(caught.value)


def test_the_forwarding_scripts_keys_share_a_slot_under_their_old_names() -> None:
    sink = RedisSink(fakeredis.FakeRedis(), history_maxlen=100)
    history, mark = sink._keys
    assert history == protocol.KEY_HISTORY
    assert mark.startswith(protocol.KEY_APPLIED_PREFIX) and len(mark) == len(protocol.KEY_APPLIED_PREFIX) + 32
    assert key_slot(mark.encode()) == key_slot(history.encode())
    # A second bridge process gets a mark of its own.
    assert RedisSink(fakeredis.FakeRedis(), history_maxlen=100).mark_key != mark


def test_the_mark_follows_a_renamed_stream_even_with_a_hash_tag() -> None:
    for stream in ("mqtt:brokers:plant-a:history", "mqtt:{plant-b}:history"):
        assert key_slot(mark_key_for(stream).encode()) == key_slot(stream.encode())


def test_the_forwarding_script_still_writes_history_and_channel_once_per_token() -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    listener = fakeredis.FakeRedis(server=server).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(protocol.CHANNEL_MESSAGES)
    sink = RedisSink(client, history_maxlen=100)
    assert sink.forward_chunk(['{"n":1}', '{"n":2}'], "t1").applied == 2
    assert sink.forward_chunk(['{"n":1}', '{"n":2}'], "t1").repeat  # a lost reply: not written twice
    entries = client.xrange(protocol.KEY_HISTORY)
    assert [fields[protocol.HISTORY_FIELD.encode()] for _, fields in entries] == [b'{"n":1}', b'{"n":2}']
    heard = [m["data"] for _ in range(10) if (m := listener.get_message(timeout=0.1))]
    assert heard == [b'{"n":1}', b'{"n":2}']


def test_a_client_not_made_here_is_left_as_it_is() -> None:
    fake = fakeredis.FakeRedis()
    assert not redis_topology.made(fake)
    assert redis_topology.with_timeout(fake, 0.5) is fake
    assert not redis_topology.is_cluster(fake)


@pytest.mark.parametrize(
    "away",
    [
        ClusterDownError("The cluster is down"),  # forming, or a primary failed and none promoted yet
        TryAgainError("Multiple keys request during rehashing of slot"),
        RedisClusterException("Redis Cluster cannot be connected"),  # not even a RedisError
    ],
)
def test_a_cluster_between_primaries_is_waited_for_not_a_refusal(away: Exception) -> None:
    """Seen for real: a bridge started while its cluster formed dropped a QoS 1 message it took for
    refused ("The cluster is down") and acknowledged it. It must wait and write it instead."""
    r = fakeredis.FakeRedis()
    counters = Counters()
    acked: list[int] = []
    writer = Writer(
        deque(),
        RedisSink(r, history_maxlen=1000),
        counters,
        TopicIndex(),
        lambda items: None,
        lambda: False,
        threading.Event(),
        backoff=NoWait(),
    )
    writer.ack = lambda mid, qos: acked.append(mid)
    real = writer.sink.forward_chunk
    calls = 0

    def down_at_first(messages, token, maxlen=None):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise away
        return real(messages, token, maxlen)

    writer.sink.forward_chunk = down_at_first  # type: ignore[method-assign]
    writer.process([("plant/1", b"21.5", 1, False, 1.0, 7, False)])
    assert calls == 2
    assert [json.loads(f[b"data"])["topic"] for _, f in r.xrange(protocol.KEY_HISTORY)] == ["plant/1"]
    assert (counters.forwarded, counters.dropped, acked) == (1, 0, [7])
