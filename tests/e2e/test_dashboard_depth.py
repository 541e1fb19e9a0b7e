"""Issue 16 in a real browser: overview charts full on load, and the rest of the dashboard's depth.

Screenshots land in test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Browser, Locator, Page, expect

from bridge.contract import protocol
from bridge.insight.stats_history import fine_points
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, login, shot
from tests.helpers import (
    BridgeProcess,
    DashboardProcess,
    MqttRecorder,
    Process,
    mosquitto_env,
    tool,
    wait_for,
)

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


def test_a_saved_publish_is_shared_runs_in_one_click_and_leaves_nothing_in_the_browser(
    page: Page, chromium: Browser, dashboard: DashboardProcess, mosquitto: Process
) -> None:
    login(page, dashboard)
    page.goto(f"{dashboard.url}/#/publish")
    page.get_by_test_id("publish-topic").fill("e2e/templates/lamp")
    page.get_by_test_id("publish-payload").fill('{"on": true}')
    page.get_by_test_id("publish-qos").select_option("1")
    name = f"Lamp on {time.time():.0f}"
    page.get_by_test_id("template-name").fill(name)
    page.get_by_test_id("template-save").click()
    row = page.get_by_test_id("template-row").filter(has_text=name)
    expect(row).to_be_visible(timeout=5_000)

    # Another person, in another browser context, sees the template and runs it.
    other = chromium.new_context(viewport={"width": 1400, "height": 900})
    try:
        second = other.new_page()
        login(second, dashboard)
        second.goto(f"{dashboard.url}/#/publish")
        theirs = second.get_by_test_id("template-row").filter(has_text=name)
        with MqttRecorder(mosquitto.port, "e2e/templates/#") as subscriber:
            theirs.get_by_test_id("template-run").click()
            expect(theirs.get_by_test_id("template-result")).to_contain_text(
                "the bridge confirmed it", timeout=10_000
            )
            wait_for(subscriber.received, 10, what="the template's message at the MQTT subscriber")
            assert [(m.topic, m.payload, m.qos) for m in subscriber.received()] == [
                ("e2e/templates/lamp", b'{"on": true}', 1)
            ]
        newest = second.get_by_test_id("recent-publish").first
        expect(newest).to_contain_text(name)
        expect(newest.get_by_test_id("recent-publish-result")).to_have_text("✓ published")
        shot(second, "16-saved-publish-run")
        stored = second.evaluate("JSON.stringify(Object.assign({}, localStorage))")
        assert "e2e/templates" not in stored and "recent-publishes" not in stored, stored
    finally:
        other.close()
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_a_sparkplug_payload_is_shown_decoded_with_the_raw_bytes_a_click_away(
    page: Page, dashboard: DashboardProcess, mosquitto: Process, stack_dir: Path
) -> None:
    # A Tahu payload (timestamp, one Double metric "temperature" = 21.5), encoded by protobufjs.
    payload = bytes.fromhex(
        "08fbd095ffbc3112"  # timestamp 1700000000123, then metric 1:
        "1a0a0b74656d70657261747572651002200a690000000000803540"
    )
    path = stack_dir / "sparkplug.bin"
    path.write_bytes(payload)
    login(page, dashboard)
    page.goto(f"{dashboard.url}/#/messages")
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=10_000)
    topic = "spBv1.0/plant/DDATA/edge1/press"
    subprocess.run(
        [tool("mosquitto_pub"), "-p", str(mosquitto.port), "-t", topic, "-f", str(path)],
        check=True,
        timeout=10,
        env=mosquitto_env(),
    )
    row = page.get_by_test_id("message-row").filter(has_text=topic).first
    expect(row.get_by_test_id("message-payload")).to_contain_text("[Sparkplug B]", timeout=5_000)
    expect(row.get_by_test_id("message-payload")).to_contain_text('"name":"temperature"')
    row.click()
    body = page.get_by_test_id("payload-view-body")
    expect(page.get_by_test_id("payload-view-note")).to_have_text("decoded as Sparkplug B")
    expect(body).to_contain_text('"value": 21.5')
    page.get_by_test_id("payload-mode-hex").click()
    page.get_by_test_id("payload-raw-toggle").click()
    expect(body).to_contain_text("08 fb d0 95")
    shot(page, "16-sparkplug-decoded")
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_a_json_field_chart_fills_from_history_then_live_and_survives_a_reload(
    page: Page, dashboard: DashboardProcess, mosquitto: Process
) -> None:
    topic = f"e2e/press{int(time.time())}/line1"
    for i in range(12):
        payload = json.dumps({"sensors": [{"temp": 20 + i}], "state": "run"})
        subprocess.run(
            [tool("mosquitto_pub"), "-p", str(mosquitto.port), "-t", topic, "-m", payload],
            check=True,
            timeout=10,
            env=mosquitto_env(),
        )
    login(page, dashboard)
    page.goto(f"{dashboard.url}/#/topics")
    page.get_by_test_id("topics-search").fill(topic)
    row = page.locator(f'[data-testid="topic-row"][data-topic="{topic}"]')
    row.wait_for(timeout=10_000)
    row.click()
    picker = page.get_by_test_id("field-picker")
    expect(picker.locator("datalist option")).to_have_count(1, timeout=10_000)
    page.get_by_test_id("field-path").fill("sensors[0].temp")
    page.get_by_test_id("field-add").click()
    expect(page.get_by_test_id("field-added")).to_contain_text("Added sensors[0].temp")

    page.get_by_test_id("nav-overview").click()
    plot = page.get_by_test_id("field-chart-plot")
    wait_points(page, plot, 12)  # the twelve messages already in the history
    subprocess.run(
        [tool("mosquitto_pub"), "-p", str(mosquitto.port), "-t", topic, "-m", '{"sensors": [{"temp": 40}]}'],
        check=True,
        timeout=10,
        env=mosquitto_env(),
    )
    wait_points(page, plot, 13)  # then live
    shot(page, "16-field-chart")

    page.reload()
    page.get_by_test_id("nav-overview").click()
    expect(page.get_by_test_id("field-chart-series")).to_contain_text(
        f"{topic} · sensors[0].temp", timeout=10_000
    )
    wait_points(
        page, page.get_by_test_id("field-chart-plot"), 13
    )  # kept in this browser, refilled from history
    assert not page.errors, page.errors  # type: ignore[attr-defined]


STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@pytest.fixture
def csp_page(chromium: Browser) -> Iterator[Page]:
    """A page whose every response carries STRICT_CSP. Responses fulfilled by the test lose their
    loopback origin for Chromium's local-network checks, which would then refuse the WebSocket to
    127.0.0.1; this browser of its own is started without those checks."""

    def with_csp(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    args = [*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"]
    browser = chromium.browser_type.launch(executable_path=CHROMIUM, headless=True, args=args)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    page.route("**/*", with_csp)
    yield page
    browser.close()


def test_the_new_views_run_under_a_strict_csp_without_eval_or_inline_code(
    csp_page: Page, dashboard: DashboardProcess, mosquitto: Process, stack_dir: Path
) -> None:
    """The security work adds a Content-Security-Policy; decoders, charts, diff and saved publishes
    must need neither eval nor inline script or style."""
    page = csp_page
    page.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push("
        "e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));"
    )
    login(page, dashboard)
    page.goto(f"{dashboard.url}/#/overview")
    wait_points(page, page.get_by_test_id("chart-rates"), 2, timeout=15_000)
    page.get_by_test_id("range-24h").click()
    expect(page.get_by_test_id("range-24h")).to_have_attribute("aria-pressed", "true")

    page.goto(f"{dashboard.url}/#/messages")
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=10_000)
    blob = stack_dir / "csp-msgpack.bin"
    blob.write_bytes(bytes.fromhex("82a474656d70cb4035800000000000a26f6bc3"))  # {"temp": 21.5, "ok": true}
    topic = "e2e/csp/msgpack"
    subprocess.run(
        [tool("mosquitto_pub"), "-p", str(mosquitto.port), "-t", topic, "-f", str(blob)],
        check=True,
        timeout=10,
        env=mosquitto_env(),
    )
    page.get_by_test_id("message-row").filter(has_text=topic).first.click()
    page.get_by_test_id("payload-decoder").select_option("msgpack")
    expect(page.get_by_test_id("payload-view-body")).to_contain_text('"temp": 21.5')
    page.goto(f"{dashboard.url}/#/publish")
    page.get_by_test_id("template-row").first.or_(page.get_by_text("No saved publishes yet.")).wait_for()
    page.goto(f"{dashboard.url}/#/topics")
    page.get_by_test_id("topic-row").first.wait_for(timeout=10_000)

    assert page.evaluate("window.__cspViolations") == []
    assert not page.errors, page.errors  # type: ignore[attr-defined]
