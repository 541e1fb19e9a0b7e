"""Issue 15 in a real browser: a tenant and an account made on the Tenants page, against mosquitto
with the dynamic security plugin, through the real bridge and a 2-worker dashboard.

Screenshots land in test-artifacts/e2e/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from playwright.sync_api import Browser, Page, expect

from bridge.contract.secret_box import generate_key
from tests.e2e.conftest import TOKEN, login, shot
from tests.e2e.test_accessibility import AXE, THEME_KEY, serious
from tests.helpers import (
    DYNSEC_BRIDGE_PASSWORD,
    DYNSEC_BRIDGE_USER,
    BridgeProcess,
    DashboardProcess,
    DynsecMosquitto,
    Process,
)

pytestmark = pytest.mark.e2e

KEY = generate_key()


@pytest.fixture(scope="module")
def dynsec_broker(stack_dir: Path) -> Iterator[DynsecMosquitto]:
    proc = DynsecMosquitto(stack_dir)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def tenant_dashboard(
    stack_dir: Path, dynsec_broker: DynsecMosquitto, redis_server: Process
) -> Iterator[DashboardProcess]:
    bridge = BridgeProcess(
        stack_dir,
        dynsec_broker.port,
        redis_server.port,
        MQTT_USERNAME=DYNSEC_BRIDGE_USER,
        MQTT_PASSWORD=DYNSEC_BRIDGE_PASSWORD,
        CONFIG_SECRET_KEY=KEY,
    ).start()
    dashboard = DashboardProcess(
        stack_dir, redis_server.port, workers=2, DASHBOARD_TOKEN=TOKEN, CONFIG_SECRET_KEY=KEY
    ).start()
    yield dashboard
    dashboard.stop()
    bridge.kill()


def connects(port: int, username: str, password: str) -> bool:
    """Whether the broker accepts this account (a CONNACK without failure)."""
    answered = threading.Event()
    outcome: list[bool] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.on_connect = lambda c, u, f, rc, p: (outcome.append(not rc.is_failure), answered.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        answered.wait(10)
        return outcome == [True]
    finally:
        client.disconnect()
        client.loop_stop()
        client.on_connect = None


def test_a_tenant_and_an_account_made_in_the_browser_work_on_the_broker(
    page: Page, tenant_dashboard: DashboardProcess, dynsec_broker: DynsecMosquitto
) -> None:
    login(page, tenant_dashboard)
    page.get_by_test_id("nav-tenants").click()
    expect(page.get_by_role("heading", name="Tenants")).to_be_visible()

    page.get_by_test_id("tenant-name").fill("acme")
    page.get_by_test_id("tenant-create").click()
    result = page.get_by_test_id("tenants-result")
    expect(result).to_have_text("Tenant acme created.", timeout=20_000)
    tenant = page.locator('[data-tenant="acme"]')
    expect(tenant).to_contain_text("tenants/acme/#")

    tenant.get_by_test_id("account-name").fill("acme-sensor")
    tenant.get_by_test_id("account-add").click()
    expect(result).to_have_text("Account acme-sensor added to acme.", timeout=20_000)
    password = page.get_by_test_id("new-password-value").inner_text().strip()
    assert len(password) >= 24
    expect(tenant.locator('[data-account="acme-sensor"]')).to_contain_text("enabled")
    shot(page, "tenants-new-account")

    # The password the page showed is the account's on the real broker, and the browser kept none.
    assert connects(dynsec_broker.port, "acme-sensor", password)
    stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
    assert password not in stored
    page.get_by_test_id("new-password-dismiss").click()
    expect(page.get_by_test_id("new-password")).to_have_count(0)
    assert password not in page.content()

    # Refused: the words on the page.
    page.get_by_test_id("tenant-name").fill("acme")
    page.get_by_test_id("tenant-create").click()
    expect(result).to_have_text("tenant 'acme' exists already", timeout=20_000)
    expect(result).to_have_attribute("data-ok", "false")

    tenant.get_by_test_id("account-toggle").click()
    expect(tenant.locator('[data-account="acme-sensor"]')).to_contain_text("disabled", timeout=20_000)
    assert not connects(dynsec_broker.port, "acme-sensor", password)
    shot(page, "tenants-refused-and-disabled")
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_tenants_page_passes_axe_in_both_themes(
    chromium: Browser, tenant_dashboard: DashboardProcess, theme: str
) -> None:
    if not AXE.exists():
        pytest.fail("axe-core is not installed: run `cd frontend && npm ci`")
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    context.add_init_script(f"localStorage.setItem({THEME_KEY!r}, {theme!r})")
    page = context.new_page()
    try:
        login(page, tenant_dashboard)
        page.get_by_test_id("nav-tenants").click()
        name = f"axe-{theme}"
        page.get_by_test_id("tenant-name").fill(name)
        page.get_by_test_id("tenant-create").click()
        tenant = page.locator(f'[data-tenant="{name}"]')
        tenant.get_by_test_id("account-name").fill(f"{name}-dev")
        tenant.get_by_test_id("account-add").click()
        expect(page.get_by_test_id("new-password")).to_be_visible(timeout=20_000)
        assert serious(page, f"tenants ({theme})") == []
        page.get_by_test_id("tenant-name").fill(name)
        page.get_by_test_id("tenant-create").click()
        expect(page.get_by_test_id("tenants-result")).to_have_attribute("data-ok", "false", timeout=20_000)
        assert serious(page, f"tenants, refused ({theme})") == []
    finally:
        context.close()
