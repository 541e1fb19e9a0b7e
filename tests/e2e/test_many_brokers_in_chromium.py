"""One dashboard, two brokers, in Chromium: the switcher shows one broker at a time, and the
"All brokers" page shows both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import TOKEN, login, shot
from tests.helpers import BridgeProcess, DashboardProcess, Process, start_mosquitto
from tests.mosquitto_bin import run_tool

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_brokers(stack_dir: Path) -> Iterator[dict[str, Process]]:
    found = {"a": start_mosquitto(stack_dir), "b": start_mosquitto(stack_dir)}
    yield found
    for proc in found.values():
        proc.stop()


@pytest.fixture(scope="module")
def two_bridges(
    stack_dir: Path, two_brokers: dict[str, Process], redis_server: Process
) -> Iterator[dict[str, BridgeProcess]]:
    found = {
        name: BridgeProcess(
            stack_dir, broker.port, redis_server.port, BRIDGE_NAME=name, MQTT_CLIENT_ID=f"e2e-bridge-{name}"
        ).start()
        for name, broker in two_brokers.items()
    }
    yield found
    for proc in found.values():
        proc.kill()


@pytest.fixture(scope="module")
def many_dashboard(
    stack_dir: Path, redis_server: Process, two_bridges: dict[str, BridgeProcess]
) -> Iterator[DashboardProcess]:
    proc = DashboardProcess(stack_dir, redis_server.port, workers=2, DASHBOARD_TOKEN=TOKEN).start()
    yield proc
    proc.stop()


def mosquitto_pub(port: int, topic: str, message: str) -> None:
    run_tool("mosquitto_pub", "-p", str(port), "-t", topic, "-m", message, timeout=10)


def test_switching_brokers_shows_only_the_chosen_brokers_messages(
    page: Page, many_dashboard: DashboardProcess, two_brokers: dict[str, Process]
) -> None:
    login(page, many_dashboard)
    page.goto(f"{many_dashboard.url}/?broker=a#/messages")
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=10_000)
    expect(page.get_by_test_id("status-bridge")).to_contain_text("online", timeout=10_000)
    switcher = page.get_by_test_id("broker-switcher")
    expect(switcher).to_have_value("a")
    expect(switcher.locator("option")).to_have_count(2, timeout=10_000)  # a and b, from the registry

    stamp = time.time()
    mosquitto_pub(two_brokers["a"].port, "e2e/where", f"on broker a {stamp}")
    payloads = page.get_by_test_id("message-payload")
    expect(payloads.filter(has_text=f"on broker a {stamp}").first).to_be_visible(timeout=5_000)
    shot(page, "many-01-broker-a")

    switcher.select_option("b")
    page.wait_for_url("**/?broker=b#/messages", timeout=10_000)
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=10_000)
    expect(page.get_by_test_id("broker-switcher")).to_have_value("b")
    mosquitto_pub(two_brokers["a"].port, "e2e/where", f"again on broker a {stamp}")
    mosquitto_pub(two_brokers["b"].port, "e2e/where", f"on broker b {stamp}")
    expect(payloads.filter(has_text=f"on broker b {stamp}").first).to_be_visible(timeout=5_000)
    # b's message arrived after a's second one was published: a's never reaches this page
    expect(payloads.filter(has_text="on broker a")).to_have_count(0)
    shot(page, "many-02-broker-b")

    page.get_by_test_id("nav-brokers").click()
    for name in ("a", "b"):
        expect(page.get_by_test_id(f"broker-state-{name}")).to_contain_text("connected", timeout=10_000)
    shot(page, "many-03-all-brokers")
    page.get_by_test_id("broker-open-a").click()
    page.wait_for_url("**/?broker=a#/overview", timeout=10_000)
    expect(page.get_by_test_id("broker-switcher")).to_have_value("a")
    assert page.errors == []  # type: ignore[attr-defined]
