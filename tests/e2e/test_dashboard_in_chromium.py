"""A person's view of the dashboard: headless Chromium against the real stack.

Screenshots land in test-artifacts/e2e/ (look at them: would a newcomer understand the page?).
"""

from __future__ import annotations

import threading
import time

import pytest
from playwright.sync_api import Page, expect

from bridge.demo import run_demo
from tests.e2e.conftest import TOKEN, login, shot
from tests.helpers import BridgeProcess, DashboardProcess, MqttRecorder, Process, wait_for
from tests.mosquitto_bin import run_tool

pytestmark = pytest.mark.e2e

XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "<script>window.__pwned = 1; alert(2)</script>"


def mosquitto_pub(port: int, topic: str, message: str) -> None:
    run_tool("mosquitto_pub", "-p", str(port), "-t", topic, "-m", message, timeout=10)


@pytest.fixture(scope="module")
def demo_traffic(mosquitto: Process, dashboard: DashboardProcess) -> None:
    """A few seconds of the demo sensors, so every panel has something to show."""
    done = threading.Event()
    thread = threading.Thread(
        target=run_demo,
        args=("127.0.0.1", mosquitto.port),
        kwargs={"rate": 4.0, "stop": done, "duration": 6.0, "seed": 7},
        daemon=True,
    )
    thread.start()
    thread.join(20)


def test_login_refuses_a_wrong_token_and_accepts_the_right_one(
    page: Page, dashboard: DashboardProcess
) -> None:
    page.goto(dashboard.url)
    expect(page.get_by_test_id("login-form")).to_be_visible(timeout=15_000)
    shot(page, "01-login")
    page.get_by_test_id("login-token").fill("not-the-token")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_be_visible()
    page.get_by_test_id("login-token").fill(TOKEN)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("nav-overview")).to_be_visible(timeout=10_000)
    expect(page.get_by_test_id("login-form")).to_have_count(0)


def test_a_mosquitto_pub_message_appears_in_the_stream_within_2_s(
    page: Page, dashboard: DashboardProcess, mosquitto: Process
) -> None:
    login(page, dashboard)
    page.goto(f"{dashboard.url}/#/messages")
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=10_000)
    text = f"hello from mosquitto_pub {time.time()}"
    mosquitto_pub(mosquitto.port, "e2e/greeting", text)
    row = page.get_by_test_id("message-payload").filter(has_text=text)
    expect(row.first).to_be_visible(timeout=2_000)
    shot(page, "02-message-arrived")


def test_the_publish_form_reaches_an_mqtt_subscriber(
    page: Page, dashboard: DashboardProcess, mosquitto: Process
) -> None:
    login(page, dashboard)
    page.goto(f"{dashboard.url}/#/publish")
    with MqttRecorder(mosquitto.port, "e2e/valve/#") as subscriber:
        page.get_by_test_id("publish-topic").fill("e2e/valve/7")
        page.get_by_test_id("publish-payload").fill('{"open": true}')
        page.get_by_test_id("publish-qos").select_option("1")
        page.get_by_test_id("publish-submit").click()
        expect(page.get_by_test_id("publish-result")).to_have_attribute("data-ok", "true", timeout=10_000)
        wait_for(subscriber.received, 10, what="the published message at the MQTT subscriber")
        assert [(m.topic, m.payload, m.qos) for m in subscriber.received()] == [
            ("e2e/valve/7", b'{"open": true}', 1)
        ]
    shot(page, "03-published")
    page.get_by_test_id("publish-topic").fill("e2e/valve/#")
    page.get_by_test_id("publish-submit").click()
    expect(page.get_by_test_id("publish-result")).to_have_attribute("data-ok", "false", timeout=10_000)
    expect(page.get_by_test_id("publish-result")).to_contain_text("wildcard")


def test_markup_payloads_are_shown_as_text_and_run_nothing(
    page: Page, dashboard: DashboardProcess, mosquitto: Process
) -> None:
    login(page, dashboard)
    page.goto(f"{dashboard.url}/#/messages")
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=10_000)
    mosquitto_pub(mosquitto.port, "e2e/xss/img", XSS_IMG)
    mosquitto_pub(mosquitto.port, "e2e/xss/<b>topic</b>", XSS_SCRIPT)
    for text in (XSS_IMG, XSS_SCRIPT):
        expect(page.get_by_test_id("message-payload").filter(has_text=text).first).to_be_visible(
            timeout=5_000
        )
    expect(page.get_by_test_id("message-topic").filter(has_text="e2e/xss/<b>topic</b>").first).to_be_visible()
    # Open each in the detail view too (pretty JSON / hex modes render the same bytes).
    page.get_by_test_id("message-row").filter(has_text=XSS_IMG).first.click()
    for mode in ("text", "json", "hex"):
        tab = page.get_by_test_id(f"payload-mode-{mode}")
        if tab.count():
            tab.first.click()
    page.goto(f"{dashboard.url}/#/topics")
    page.wait_for_timeout(500)  # give any injected handler the chance to run
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("script", has_text="__pwned").count() == 0
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    shot(page, "04-markup-as-text")


@pytest.mark.parametrize("view", ["overview", "topics", "messages", "publish", "subscriptions", "clients"])
def test_every_view_renders_live_data(
    page: Page, dashboard: DashboardProcess, demo_traffic: None, mosquitto: Process, view: str
) -> None:
    login(page, dashboard)
    page.goto(f"{dashboard.url}/#/{view}")
    expect(page.get_by_test_id(f"nav-{view}")).to_be_visible()
    if view == "overview":
        expect(page.get_by_test_id("card-version").get_by_test_id("card-value")).to_contain_text(
            "2.", timeout=15_000
        )
    elif view == "topics":
        expect(page.get_by_test_id("topic-row").first).to_be_visible(timeout=15_000)
    elif view == "messages":
        expect(page.get_by_test_id("message-row").first).to_be_visible(timeout=15_000)
    elif view == "subscriptions":
        expect(page.get_by_test_id("subscription-row").first).to_be_visible(timeout=15_000)
    elif view == "clients":
        expect(page.get_by_test_id("clients-table")).to_be_visible(timeout=15_000)
        # A client connected now (the demo's have left): its protocol as people name it, not
        # mosquitto's p5 (p2/p4 for 3.1.1 on 2.0/2.1).
        with MqttRecorder(mosquitto.port, "e2e/#", client_id="e2e-clients-view"):
            row = page.get_by_test_id("client-row").filter(has_text="e2e-clients-view")
            expect(row.get_by_test_id("client-protocol")).to_have_text("MQTT 5", timeout=15_000)
    page.wait_for_timeout(300)
    shot(page, f"10-view-{view}")
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_stopping_the_bridge_shows_the_offline_banner(
    page: Page, dashboard: DashboardProcess, bridge: BridgeProcess
) -> None:
    login(page, dashboard)
    expect(page.get_by_test_id("banner-bridge")).to_have_count(0, timeout=10_000)
    bridge.stop()
    expect(page.get_by_test_id("banner-bridge")).to_be_visible(timeout=20_000)
    shot(page, "20-bridge-offline")
