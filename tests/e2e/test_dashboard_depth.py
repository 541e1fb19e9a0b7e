"""Issue 16 in a real browser: overview charts full on load, and the rest of the dashboard's depth.

Screenshots land in test-artifacts/e2e/.
"""

from __future__ import annotations

import time

import pytest
import redis
from playwright.sync_api import Locator, Page, expect

from bridge import protocol
from bridge.stats_history import fine_points
from tests.e2e.conftest import login, shot
from tests.helpers import BridgeProcess, DashboardProcess, Process

pytestmark = pytest.mark.e2e

RATE_LINE_RGB = (59, 130, 246)  # the "in (received/s)" series colour, #3b82f6

# Pixels of the chart canvas within a small distance of a colour: the line uPlot drew.
COUNT_COLOURED_PIXELS = """([el, rgb]) => {
  const canvas = el.querySelector('canvas')
  if (!canvas) return -1
  const ctx = canvas.getContext('2d')
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height)
  let n = 0
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - rgb[0]) < 24 && Math.abs(data[i + 1] - rgb[1]) < 24
        && Math.abs(data[i + 2] - rgb[2]) < 24 && data[i + 3] > 200) n++
  }
  return n
}"""


def seed_stats_history(redis_port: int, minutes: int, every: float) -> int:
    """What a bridge that ran for ``minutes`` would have recorded, ending now (replacing what is
    there, in one transaction, so the running bridge's next points come after)."""
    client = redis.Redis(port=redis_port)
    now = time.time()
    count = int(minutes * 60 / every)
    pipe = client.pipeline(transaction=True)
    pipe.delete(protocol.KEY_STATS_HISTORY, protocol.KEY_STATS_HISTORY_MINUTE)
    texts = []
    for i in range(count):
        stamp = now - (count - i) * every
        point = {
            "timestamp": stamp,
            "data": {
                "clients_connected": 3 + i % 4,
                "messages_received": 1000 + 40 * i,
                "messages_sent": 2000 + 90 * i,
                "rates": {"messages_received_per_s": 8.0 + i % 5, "messages_sent_per_s": 18.0},
            },
        }
        texts.append(protocol.dumps(point))
    pipe.rpush(protocol.KEY_STATS_HISTORY, *texts[-fine_points(every) :])
    pipe.rpush(protocol.KEY_STATS_HISTORY_MINUTE, *texts[:: max(1, int(60 / every))])
    pipe.execute()
    client.close()
    return count


def wait_points(page: Page, chart: Locator, at_least: int, timeout: float = 5_000) -> None:
    """Wait until the chart holds ``at_least`` points (its data-points attribute)."""
    page.wait_for_function(
        "([el, n]) => Number(el.dataset.points) >= n", arg=[chart.element_handle(), at_least], timeout=timeout
    )


def test_the_overview_charts_are_drawn_the_moment_the_page_opens(
    page: Page, dashboard: DashboardProcess, bridge: BridgeProcess, redis_server: Process
) -> None:
    seeded = seed_stats_history(redis_server.port, minutes=15, every=5)
    assert seeded == 180
    login(page, dashboard)
    opened = time.monotonic()
    page.goto(f"{dashboard.url}/#/overview")
    rates = page.get_by_test_id("chart-rates")
    clients = page.get_by_test_id("chart-clients")
    # Live points come once a second (STATS_INTERVAL=1 in the test bridge): 150 points within a
    # few seconds can only be the recorded history.
    for chart in (rates, clients):
        wait_points(page, chart, 150)
    assert time.monotonic() - opened < 5.0
    drawn = page.evaluate(COUNT_COLOURED_PIXELS, [rates.element_handle(), list(RATE_LINE_RGB)])
    assert drawn > 200, f"the message-rate line is not drawn ({drawn} pixels of its colour)"
    shot(page, "16-overview-charts-on-load")

    page.get_by_test_id("range-1h").click()
    expect(page.get_by_test_id("range-1h")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_text("last hour").first).to_be_visible()
    wait_points(page, rates, 150)
    assert not page.errors, page.errors  # type: ignore[attr-defined]
