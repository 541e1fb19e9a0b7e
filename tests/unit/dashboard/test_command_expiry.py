"""The dashboard's commands carry expires_at by Redis's clock, leaving the bridge time to answer."""

from __future__ import annotations

import fakeredis
import pytest

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import CMD_CLEAR_RETAINED, CMD_TEST_CONNECTION, COMMAND_RUN_MAX
from dashboard.commands import build_args_command, expiry


def _now(r: fakeredis.FakeRedis) -> float:
    seconds, micros = r.time()
    return seconds + micros / 1e6


@pytest.mark.parametrize(
    ("timeout", "ahead"), [(5.0, 5.0 - COMMAND_RUN_MAX), (60.0, 60.0 - COMMAND_RUN_MAX), (2.0, 1.0)]
)
def test_expiry_leaves_time_for_the_bridge_to_answer_before_the_dashboard_gives_up(
    timeout: float, ahead: float
) -> None:
    r = fakeredis.FakeRedis()
    before = _now(r)
    expires_at = expiry(r, timeout)
    assert before + ahead - 0.5 <= expires_at <= _now(r) + ahead


def test_a_command_with_its_own_fields_is_built_with_a_fresh_id_and_checked() -> None:
    first = build_args_command(CMD_TEST_CONNECTION, {"host": "broker", "port": 8883})
    second = build_args_command(CMD_TEST_CONNECTION, {"host": "broker", "port": 8883})

    assert first["id"] != second["id"]
    assert (first["type"], first["host"], first["port"]) == (CMD_TEST_CONNECTION, "broker", 8883)
    with pytest.raises(InvalidCommand, match="topic is missing"):
        build_args_command(CMD_CLEAR_RETAINED, {})
