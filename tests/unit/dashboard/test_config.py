"""Settings: defaults, one clear error per bad value, and a session key every worker agrees on."""

from __future__ import annotations

import pytest

from bridge.contract.errors import ConfigError
from dashboard.config import VARIABLES, DashboardSettings, ensure_login_token


def test_defaults() -> None:
    settings = DashboardSettings.from_env({})

    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 8082, 2)
    assert settings.auth_enabled is True
    assert settings.frame_interval == 0.1
    assert settings.frame_max == 500
    assert settings.history_on_connect == 100
    assert settings.command_timeout == 5.0
    assert settings.max_body == 1_048_576
    assert settings.redis.where == "localhost:6379/0"


def test_the_redis_variables_are_the_bridges() -> None:
    settings = DashboardSettings.from_env({"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_DB": "2"})

    assert settings.redis.where == "cache:6380/2"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("DASHBOARD_PORT", "http", "DASHBOARD_PORT must be a whole number, got 'http'"),
        ("DASHBOARD_PORT", "70000", "DASHBOARD_PORT must be between 1 and 65535"),
        ("DASHBOARD_WORKERS", "0", "DASHBOARD_WORKERS must be between 1 and 64"),
        ("DASHBOARD_AUTH", "maybe", "DASHBOARD_AUTH must be on/true or off/false"),
        ("DASHBOARD_FRAME_INTERVAL", "fast", "DASHBOARD_FRAME_INTERVAL must be a number"),
        ("DASHBOARD_FRAME_MAX", "-1", "DASHBOARD_FRAME_MAX must be between"),
        ("DASHBOARD_COMMAND_TIMEOUT", "0", "DASHBOARD_COMMAND_TIMEOUT must be between"),
        ("DASHBOARD_MAX_BODY", "1k", "DASHBOARD_MAX_BODY must be a whole number"),
        ("DASHBOARD_HISTORY_ON_CONNECT", "5000", "DASHBOARD_HISTORY_ON_CONNECT must be between"),
        ("DASHBOARD_LOG_LEVEL", "LOUD", "DASHBOARD_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR"),
        ("REDIS_PORT", "x", "REDIS_PORT"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        DashboardSettings.from_env({name: value})


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({"DASHBOARD_TOKEN": "t"}, "token"),
        ({"DASHBOARD_PASSWORD": "p"}, "password"),
        ({"DASHBOARD_AUTH": "off", "DASHBOARD_TOKEN": "t"}, "off"),
        ({}, "token"),
    ],
)
def test_auth_mode(env: dict[str, str], mode: str) -> None:
    assert DashboardSettings.from_env(env).auth_mode == mode


def test_secrets_stay_out_of_repr() -> None:
    text = repr(DashboardSettings.from_env({"DASHBOARD_TOKEN": "tok-123", "DASHBOARD_PASSWORD": "pw-456"}))

    assert "tok-123" not in text
    assert "pw-456" not in text


def test_every_worker_derives_the_same_session_key() -> None:
    env = {"DASHBOARD_TOKEN": "shared-token"}
    first, second = DashboardSettings.from_env(env), DashboardSettings.from_env(dict(env))

    assert first.session_key == second.session_key
    assert "shared-token" not in first.session_key
    assert first.session_key != DashboardSettings.from_env({"DASHBOARD_TOKEN": "other"}).session_key


def test_an_explicit_secret_key_is_used_as_is() -> None:
    settings = DashboardSettings.from_env({"DASHBOARD_TOKEN": "t", "DASHBOARD_SECRET_KEY": "k" * 40})

    assert settings.session_key == "k" * 40


def test_a_token_is_generated_once_when_auth_is_on_and_nothing_is_set() -> None:
    environ: dict[str, str] = {}

    token = ensure_login_token(environ)

    assert token is not None and len(token) >= 40
    assert environ["DASHBOARD_TOKEN"] == token
    assert ensure_login_token(environ) is None  # the workers reuse it, never make their own


@pytest.mark.parametrize(
    "env", [{"DASHBOARD_PASSWORD": "p"}, {"DASHBOARD_TOKEN": "t"}, {"DASHBOARD_AUTH": "off"}]
)
def test_no_token_is_generated_when_not_needed(env: dict[str, str]) -> None:
    environ = dict(env)

    assert ensure_login_token(environ) is None
    assert environ == env


def test_variables_lists_every_dashboard_setting_with_help() -> None:
    names = [v.name for v in VARIABLES]

    assert len(names) == len(set(names))
    assert all(name.startswith("DASHBOARD_") for name in names)
    assert {"DASHBOARD_TOKEN", "DASHBOARD_PASSWORD", "DASHBOARD_SECRET_KEY"} <= {
        v.name for v in VARIABLES if v.secret
    }
    assert all(v.help for v in VARIABLES)


@pytest.mark.parametrize("name", ["DASHBOARD_TOKEN", "DASHBOARD_PASSWORD", "DASHBOARD_SECRET_KEY"])
@pytest.mark.parametrize("value", [" ", "\t", "  \n"])
def test_a_whitespace_only_secret_is_refused_not_used(name: str, value: str) -> None:
    # issue 11, point 7: DASHBOARD_TOKEN=" " used to be accepted as the token " ".
    with pytest.raises(ConfigError, match=f"^{name} is only whitespace"):
        DashboardSettings.from_env({name: value})


def test_a_secret_with_spaces_around_it_is_kept_as_given() -> None:
    assert DashboardSettings.from_env({"DASHBOARD_TOKEN": " tok en "}).token == " tok en "
