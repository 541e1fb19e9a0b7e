"""Many brokers: every per-broker name moves by one rule, and nothing is left unclassified."""

from __future__ import annotations

import fakeredis
import pytest

from bridge.config import Settings
from bridge.contract import protocol
from bridge.contract.errors import ConfigError
from bridge.ingest.redis_sink import RedisSink
from bridge.insight.health import check
from bridge.insight.stats_history import StatsHistory


def test_the_unnamed_bridge_keeps_every_name_of_today() -> None:
    names = protocol.Names()
    for key, value in protocol.name_constants().items():
        assert getattr(names, key) == value
    assert names.latest_key == protocol.LATEST_KEY
    assert names.output_channels == protocol.OUTPUT_CHANNELS
    assert names.broker == protocol.UNNAMED_BROKER


def test_a_named_bridge_moves_every_per_broker_name_and_no_global_one() -> None:
    names = protocol.Names("plant-1")
    for key, value in protocol.name_constants().items():
        moved = getattr(names, key)
        if key in protocol.GLOBAL_NAMES:
            assert moved == value
        else:
            assert moved == "mqtt:brokers:plant-1:" + value.removeprefix("mqtt:")
    assert names.KEY_HISTORY == "mqtt:brokers:plant-1:history"
    assert names.CHANNEL_MESSAGES == "mqtt:brokers:plant-1:messages"
    assert names.KEY_PUBLISH_HISTORY == "mqtt:brokers:plant-1:dashboard:publish-history"
    assert names.KEY_PUBLISH_TEMPLATES == protocol.KEY_PUBLISH_TEMPLATES
    assert names.latest_key == {
        "mqtt:brokers:plant-1:broker:stats": "mqtt:brokers:plant-1:broker:stats:latest",
        "mqtt:brokers:plant-1:broker:status": "mqtt:brokers:plant-1:broker:status:latest",
        "mqtt:brokers:plant-1:clients": "mqtt:brokers:plant-1:clients:latest",
        "mqtt:brokers:plant-1:topics": "mqtt:brokers:plant-1:topics:latest",
    }


def test_every_name_is_a_mqtt_name_and_every_global_name_exists() -> None:
    """A constant another change adds is per broker by default; one that must stay shared has to
    be listed in GLOBAL_NAMES, and a listed name that no longer exists fails here."""
    constants = protocol.name_constants()
    assert all(value.startswith("mqtt:") for value in constants.values()), constants
    assert constants.keys() >= protocol.GLOBAL_NAMES


def test_two_named_bridges_share_no_per_broker_name() -> None:
    a, b = protocol.Names("a"), protocol.Names("b")
    per_broker = [k for k in protocol.name_constants() if k not in protocol.GLOBAL_NAMES]
    names_a = {getattr(a, k) for k in per_broker}
    names_b = {getattr(b, k) for k in per_broker}
    unnamed = {getattr(protocol.Names(), k) for k in per_broker}
    assert not names_a & names_b and not names_a & unnamed and not names_b & unnamed


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="KEY_NOPE"):
        protocol.Names("a").KEY_NOPE  # noqa: B018


@pytest.mark.parametrize(
    ("channel", "found"),
    [
        ("mqtt:messages", ("default", "mqtt:messages")),
        ("mqtt:brokers:a:messages", ("a", "mqtt:messages")),
        ("mqtt:brokers:plant-1:broker:status", ("plant-1", "mqtt:broker:status")),
        ("mqtt:brokers:a:commands", None),  # not an output channel
        ("mqtt:brokers:A:messages", None),  # not a valid name
        ("mqtt:other", None),
    ],
)
def test_broker_of_channel(channel: str, found: tuple[str, str] | None) -> None:
    assert protocol.broker_of_channel(channel) == found


@pytest.mark.parametrize("name", ["a", "plant-1", "x" * 32, "0"])
def test_valid_bridge_names(name: str) -> None:
    assert Settings.from_env({"BRIDGE_NAME": name}).bridge_name == name


@pytest.mark.parametrize("name", ["A", "plant_1", "x" * 33, "a:b", "a b", "default", "ü"])
def test_a_bad_bridge_name_is_one_clear_line(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BRIDGE_NAME": name})
    text = str(caught.value)
    assert text.startswith("BRIDGE_NAME ") and "\n" not in text


def test_unset_or_blank_bridge_name_is_the_unnamed_bridge() -> None:
    assert Settings.from_env({}).bridge_name is None
    assert Settings.from_env({"BRIDGE_NAME": "  "}).names == protocol.Names()


def test_a_named_sink_writes_only_its_own_names_and_registers() -> None:
    client = fakeredis.FakeRedis()
    sink = RedisSink(client, 100, protocol.Names("a"))
    sink.announce(protocol.CHANNEL_STATUS, {"type": "status_change", "connected": True})
    sink.heartbeat({"timestamp": 1.0}, {"type": "status_change", "connected": True})
    sink.save_subscription("x/#", 1, 1.0)
    sink.forward_chunk(['{"topic":"t"}'], "token-1")
    StatsHistory(client, 5, sink.names).record({"timestamp": 1.0, "data": {"messages_received": 1}})
    keys = {k.decode() for k in client.keys("*")}
    assert keys - {protocol.KEY_BROKER_REGISTRY} and all(
        k.startswith("mqtt:brokers:a:") for k in keys - {protocol.KEY_BROKER_REGISTRY}
    ), keys
    assert client.zscore(protocol.KEY_BROKER_REGISTRY, "a") is not None
    assert client.xlen("mqtt:brokers:a:history") == 1


def test_the_unnamed_sink_registers_as_default() -> None:
    client = fakeredis.FakeRedis()
    RedisSink(client, 100).heartbeat({"timestamp": 1.0})
    assert [m.decode() for m in client.zrange(protocol.KEY_BROKER_REGISTRY, 0, -1)] == ["default"]
    assert client.exists(protocol.KEY_HEARTBEAT)


def test_healthcheck_reads_the_named_bridges_heartbeat() -> None:
    import time

    client = fakeredis.FakeRedis()
    sink = RedisSink(client, 100, protocol.Names("b"))
    sink.heartbeat({"timestamp": time.time()}, {"connected": True, "broker": "h:1"})
    assert check(client, names=protocol.Names("b"))[0] is True
    assert check(client, names=protocol.Names())[0] is False  # the unnamed bridge is not running


# The dashboard's own names that are per broker on purpose (what was done *to* one broker).
# A broker's tenant accounts are that broker's dynamic security's.
DASHBOARD_NAMES_PER_BROKER = {"KEY_PUBLISH_HISTORY", "KEY_TENANT_ACCOUNTS"}


def test_a_dashboard_name_is_a_deliberate_choice() -> None:
    """Every name is per broker unless GLOBAL_NAMES says otherwise, which is right for what a
    bridge writes. A *dashboard* name (logins, settings, anything shared by every broker) moved
    per broker by that default would split the dashboard silently, so each one must be listed
    either here (per broker, deliberately) or in protocol.GLOBAL_NAMES."""
    dashboard = {k for k, v in protocol.name_constants().items() if v.startswith("mqtt:dashboard:")}
    undecided = dashboard - protocol.GLOBAL_NAMES - DASHBOARD_NAMES_PER_BROKER
    assert not undecided, f"decide: add {undecided} to GLOBAL_NAMES or to DASHBOARD_NAMES_PER_BROKER"


@pytest.mark.parametrize("command", [[], ["healthcheck"]])
def test_the_cli_refuses_a_bad_name_in_one_line(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import main

    assert main(command, {"BRIDGE_NAME": "Plant_1"}) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "BRIDGE_NAME must be 1 to 32 lower-case letters" in err, err
