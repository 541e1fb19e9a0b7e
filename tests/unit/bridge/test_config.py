from __future__ import annotations

import pytest
import redis.connection

from bridge.config import VARIABLES, Settings
from bridge.contract.env import RedisSettings
from bridge.contract.errors import ConfigError


def test_defaults_match_the_design() -> None:
    s = Settings.from_env({})
    assert (s.broker_host, s.broker_port, s.client_id, s.topics) == (
        "localhost",
        1883,
        "mqtt-bridge-service",
        ("#",),
    )
    assert (s.stats_interval, s.history_maxlen, s.topics_max, s.metrics_port) == (5.0, 10_000, 10_000, None)
    assert s.protocol == 5
    assert s.redis.where == "localhost:6379/0"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MQTT_BROKER_PORT": "abc"}, "MQTT_BROKER_PORT must be a whole number, got 'abc'"),
        ({"MQTT_BROKER_PORT": "70000"}, "MQTT_BROKER_PORT must be between 1 and 65535"),
        ({"REDIS_PORT": "-1"}, "REDIS_PORT must be between"),
        ({"STATS_INTERVAL": "soon"}, "STATS_INTERVAL must be a number"),
        ({"HISTORY_MAXLEN": "1.5"}, "HISTORY_MAXLEN must be a whole number"),
        ({"MQTT_PROTOCOL": "4.0"}, "MQTT_PROTOCOL must be 5 or 3.1.1"),
        ({"MQTT_TLS": "maybe"}, "MQTT_TLS must be on/true or off/false, got 'maybe'"),
        ({"MQTT_TOPICS": "a/#/b"}, "MQTT_TOPICS: topic filter 'a/#/b' is malformed"),
        ({"MQTT_TLS_CA": "/nonexistent/ca.pem"}, "MQTT_TLS_CA names '/nonexistent/ca.pem'"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must start with redis://"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR"),
        ({"MQTT_PASSWORD": "pw"}, "MQTT_PASSWORD is set but MQTT_USERNAME is not"),
        ({"METRICS_PORT": "0"}, "METRICS_PORT must be between 1 and 65535"),
    ],
)
def test_a_bad_value_names_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert words in str(caught.value)


def test_topics_are_split_trimmed_and_deduplicated() -> None:
    assert Settings.from_env({"MQTT_TOPICS": " a/# , b/+ ,, a/# "}).topics == ("a/#", "b/+")


def test_protocol_311_is_selectable() -> None:
    assert Settings.from_env({"MQTT_PROTOCOL": "3.1.1"}).protocol == 4


def test_secrets_never_show_in_repr_or_where() -> None:
    s = Settings.from_env(
        {"MQTT_USERNAME": "u", "MQTT_PASSWORD": "s3cret-mqtt", "REDIS_PASSWORD": "s3cret-redis"}
    )
    assert "s3cret" not in repr(s)
    assert "s3cret" not in s.redis.where
    assert s.redis.url == "redis://:s3cret-redis@localhost:6379/0"


def test_redis_url_wins_and_hides_its_password() -> None:
    r = RedisSettings.from_env({"REDIS_URL": "redis://:pw@cache.internal:6380/2", "REDIS_HOST": "other"})
    assert r.where == "cache.internal:6380"
    assert "pw" not in repr(r)


def test_every_variable_has_help_and_unique_name() -> None:
    names = [v.name for v in VARIABLES]
    assert len(names) == len(set(names))
    assert all(v.help for v in VARIABLES)


@pytest.mark.parametrize(
    "url", ["redis://[::1:6379", "redis://:hunter2@h:1/0?socket_timeout=abc", "redis://:hunter2@h:99999/0"]
)
def test_a_malformed_redis_url_is_one_line_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_URL is malformed") as caught:
        RedisSettings.from_env({"REDIS_URL": url})
    assert "hunter2" not in str(caught.value)


# --- issue 11, point 7: no error echoes any part of a URL or secret ------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cr3tpw#frag@redis:6379/0",  # urlsplit said "... integer value as 's3cr3tpw'"
        "redis://:1234#abc@redis/0",  # silently meant localhost:1234 without a password
        "redis://:s3cr3tpw/x@redis:6379/0",
        "redis://:s3cr3tpw?x@redis:6379/0",
        "redis://user:s3cr3tpw@:6379/0",
        "redis://:s3cr3tpw@redis:6379/s3cr3tpw",
        "redis://:s3cr3tpw@redis:6379/0?db=s3cr3tpw",
    ],
)
def test_a_redis_url_with_an_unencoded_special_character_fails_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_URL ") as caught:
        RedisSettings.from_env({"REDIS_URL": url})

    message = str(caught.value)
    assert "s3cr3tpw" not in message
    assert "1234" not in message
    assert "abc" not in message and "frag" not in message
    assert "percent-encode" in message


def test_a_percent_encoded_password_is_accepted() -> None:
    r = RedisSettings.from_env({"REDIS_URL": "redis://:s3cr%23tpw@redis:6379/0"})

    assert r.where == "redis:6379"
    assert redis.connection.parse_url(r.url)["password"] == "s3cr#tpw"


def test_session_and_receive_maximum_settings() -> None:
    from bridge.config import Settings

    defaults = Settings.from_env({})
    assert (defaults.session_expiry, defaults.receive_maximum, defaults.history_max_bytes) == (
        3600,
        1000,
        64 * 1024 * 1024,
    )
    custom = Settings.from_env({"MQTT_SESSION_EXPIRY": "0", "MQTT_RECEIVE_MAXIMUM": "50"})
    assert (custom.session_expiry, custom.receive_maximum) == (0, 50)


def test_a_receive_maximum_of_zero_is_refused() -> None:
    import pytest

    from bridge.config import Settings
    from bridge.contract.errors import ConfigError

    with pytest.raises(ConfigError, match="MQTT_RECEIVE_MAXIMUM must be between 1 and 65535"):
        Settings.from_env({"MQTT_RECEIVE_MAXIMUM": "0"})
