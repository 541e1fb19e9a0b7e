"""The Connection page in Chromium against the real stack: the live settings and the test button."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import login, shot
from tests.helpers import BridgeProcess, DashboardProcess, Process, free_port

pytestmark = pytest.mark.e2e


def test_the_test_button_says_in_words_what_happened(
    page: Page, dashboard: DashboardProcess, mosquitto: Process, bridge: BridgeProcess
) -> None:
    login(page, dashboard)
    page.get_by_test_id("nav-connection").click()
    expect(page.get_by_test_id("connection-port-now")).to_have_text(str(mosquitto.port), timeout=10_000)
    expect(page.get_by_test_id("connection-password-now")).to_have_text("not set")
    since = bridge.status()["since"]  # type: ignore[index]

    unused = free_port()
    page.get_by_test_id("connection-port").fill(str(unused))
    page.get_by_test_id("connection-test").click()
    result = page.get_by_test_id("connection-result")
    expect(result).to_have_attribute("data-outcome", "no_broker", timeout=12_000)
    expect(result).to_contain_text(f"no MQTT broker answered at 127.0.0.1:{unused} (nothing listens there")
    shot(page, "connection-test-no-listener")

    page.get_by_test_id("connection-port").fill(str(mosquitto.port))
    page.get_by_test_id("connection-test").click()
    expect(result).to_have_attribute("data-outcome", "connected", timeout=12_000)
    expect(result).to_contain_text(f"connected to 127.0.0.1:{mosquitto.port} as an anonymous client (MQTT 5)")
    shot(page, "connection-test-connected")

    status = bridge.status()
    assert status is not None and status["connected"] is True and status["since"] == since  # untouched
    assert page.errors == []  # type: ignore[attr-defined]
