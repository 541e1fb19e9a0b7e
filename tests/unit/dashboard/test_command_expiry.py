"""The dashboard's commands carry expires_at by Redis's clock, leaving the bridge time to answer."""

from __future__ import annotations

import fakeredis
import pytest

from bridge.protocol import COMMAND_RUN_MAX
from dashboard.commands import expiry


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
