"""The versions the project needs, and the sentences that say when a server is too old."""

from __future__ import annotations

import logging

import pytest

from bridge.contract.server_versions import mosquitto_shortfall, redis_refusal, version_tuple
from bridge.insight.sys_stats import SysStats


@pytest.mark.parametrize(
    ("text", "parts"), [("7.0.15", (7, 0, 15)), ("6.2.0-rc1", (6, 2, 0)), ("7.2", (7, 2)), ("", ())]
)
def test_version_tuple(text: str, parts: tuple[int, ...]) -> None:
    assert version_tuple(text) == parts


@pytest.mark.parametrize("found", ["7.0.0", "7.0.15", "7.4.1", "8.0.2"])
def test_redis_7_and_newer_are_accepted(found: str) -> None:
    assert redis_refusal(found, "mqtt-redis-bridge") is None


@pytest.mark.parametrize(("found", "shown"), [("6.0.16", "6.0"), ("6.2.14", "6.2"), ("5.0.7", "5.0")])
def test_older_redis_is_refused_in_one_line(found: str, shown: str) -> None:
    assert redis_refusal(found, "mqtt-dashboard") == f"Redis {shown} found; mqtt-dashboard needs ≥ 7.0"


def test_an_unreadable_version_is_given_the_benefit_of_the_doubt() -> None:
    assert redis_refusal("unknown", "mqtt-redis-bridge") is None


def test_mosquitto_before_2_is_named_and_others_are_not() -> None:
    assert mosquitto_shortfall("mosquitto version 1.6.9") == (
        "mosquitto 1.6 found; the client list needs mosquitto ≥ 2.0 (its connect and disconnect "
        "log lines); everything else works"
    )
    assert mosquitto_shortfall("mosquitto version 2.0.11") is None
    assert mosquitto_shortfall("VerneMQ 1.12") is None


def test_the_bridge_warns_once_about_an_old_mosquitto(caplog: pytest.LogCaptureFixture) -> None:
    stats = SysStats()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            stats.update("$SYS/broker/version", b"mosquitto version 1.6.9", 1.0)

    assert stats.data["version"] == "1.6.9"
    assert [r.getMessage() for r in caplog.records].count(mosquitto_shortfall("mosquitto version 1.6.9")) == 1
