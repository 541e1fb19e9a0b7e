"""Issue 26 in a real browser: users made with ``mqtt-dashboard users add`` log in with a name and
password; a viewer cannot publish (the page says why, the server refuses); a tenant's user sees
only the tenant's topics. Real mosquitto, redis-server, bridge and a 2-worker dashboard.

Screenshots land in test-artifacts/e2e/.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import TOKEN, shot
from tests.helpers import DashboardProcess, Process

pytestmark = pytest.mark.e2e

PASSWORD = "e2e user password"
OTHER_TENANT = "tenants/beta/secret-beta"
OUTSIDE = "plant/zeta/temp"


def add_user(dashboard: DashboardProcess, name: str, role: str, *extra: str) -> None:
    """Through the real command line, the password on standard input."""
    done = subprocess.run(
        [*DashboardProcess.command(), "users", "add", name, "--role", role, *extra],
        input=PASSWORD + "\n",
        env=dashboard.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"added {name} ({role}")


@pytest.fixture(scope="module")
def users(dashboard: DashboardProcess) -> None:
    add_user(dashboard, "olga", "operator")
    add_user(dashboard, "vic", "viewer")
    add_user(dashboard, "acme-op", "operator", "--tenant", "acme")


def mosquitto_pub(port: int, topic: str, message: str) -> None:
    subprocess.run(["mosquitto_pub", "-p", str(port), "-t", topic, "-m", message], check=True, timeout=10)


def log_in(page: Page, dashboard: DashboardProcess, name: str) -> None:
    page.goto(dashboard.url)
    page.get_by_test_id("login-username").fill(name)
    page.get_by_test_id("login-user-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("whoami")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=15_000)


def post_from_the_page(page: Page, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request the page's own code would make, with its cookie: what the server answers."""
    answer: dict[str, Any] = page.evaluate(
        """async ([path, body]) => {
            const r = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                         body: JSON.stringify(body)})
            return {status: r.status, body: await r.json()}
        }""",
        [path, body],
    )
    return answer


def test_a_user_logs_in_with_name_and_password(page: Page, dashboard: DashboardProcess, users: None) -> None:
    page.goto(dashboard.url)
    # Users exist, so the name-and-password form comes first; a wrong password is refused.
    page.get_by_test_id("login-username").fill("olga")
    page.get_by_test_id("login-user-password").fill("not her password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("Wrong user name or password")
    shot(page, "60-user-login-refused")

    log_in(page, dashboard, "olga")

    expect(page.get_by_test_id("whoami")).to_have_text("olga · operator")
    expect(page.get_by_test_id("nav-publish")).to_be_visible()
    for admin_only in ("users", "audit"):
        expect(page.get_by_test_id(f"nav-{admin_only}")).to_have_count(0)
    assert page.evaluate("JSON.stringify(Object.entries(localStorage))").find(PASSWORD) == -1
    shot(page, "61-user-logged-in")
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_a_viewer_cannot_publish_and_is_told_why(
    page: Page, dashboard: DashboardProcess, users: None
) -> None:
    log_in(page, dashboard, "vic")
    page.get_by_test_id("nav-publish").click()

    note = page.get_by_test_id("publish-role-note")
    expect(note).to_contain_text("Publishing needs the operator role or higher; vic is a viewer")
    expect(page.get_by_test_id("publish-submit")).to_be_disabled()
    expect(page.get_by_test_id("publish-topic")).to_be_disabled()
    shot(page, "62-viewer-publish-page")

    # Not only hidden: the server refuses the viewer's publish, in words.
    answer = post_from_the_page(page, "/api/publish", {"topic": "e2e/valve/1", "payload": "open"})
    assert answer["status"] == 403
    assert "publishing needs the operator role" in answer["body"]["error"]
    # ...while reading works, as a viewer's should.
    expect(page.get_by_test_id("nav-messages")).to_be_visible()
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_a_tenant_user_sees_only_their_tenant(
    page: Page, dashboard: DashboardProcess, mosquitto: Process, users: None
) -> None:
    stamp = str(time.time())
    for topic in ("tenants/acme/temp", OTHER_TENANT, OUTSIDE):
        mosquitto_pub(mosquitto.port, topic, f"{topic.split('/')[1]}-{stamp}")
    log_in(page, dashboard, "acme-op")
    expect(page.get_by_test_id("whoami")).to_have_text("acme-op · operator · tenant acme")
    expect(page.get_by_test_id("tenant-topic")).to_have_text("tenants/acme/#")
    for closed in ("connection", "tenants", "brokers", "users", "audit"):
        expect(page.get_by_test_id(f"nav-{closed}")).to_have_count(0)

    # Live: messages of every tenant arrive at the broker; only acme's reach this page.
    page.get_by_test_id("nav-messages").click()
    for topic in ("tenants/acme/temp", OTHER_TENANT, OUTSIDE):
        mosquitto_pub(mosquitto.port, topic, f"live-{topic.split('/')[1]}-{stamp}")
    expect(page.get_by_test_id("message-payload").filter(has_text=f"live-acme-{stamp}").first).to_be_visible(
        timeout=10_000
    )
    shot(page, "63-tenant-messages")
    page.get_by_test_id("nav-topics").click()
    expect(page.get_by_test_id("topic-row").first).to_be_visible(timeout=10_000)
    shot(page, "64-tenant-topics")
    text = page.locator("main").inner_text()
    for leak in ("beta", "zeta", "$SYS"):
        assert leak not in text, leak
    page.get_by_test_id("nav-messages").click()
    assert "beta" not in page.locator("main").inner_text()

    # Publishing outside the tenant is refused in words; inside it works.
    page.get_by_test_id("nav-publish").click()
    expect(page.get_by_test_id("publish-tenant-hint")).to_contain_text("tenants/acme/#")
    page.get_by_test_id("publish-topic").fill("tenants/beta/valve")
    page.get_by_test_id("publish-payload").fill("open")
    page.get_by_test_id("publish-submit").click()
    result = page.get_by_test_id("publish-result")
    expect(result).to_have_attribute("data-ok", "false", timeout=10_000)
    expect(result).to_contain_text("outside your tenant's topics")
    shot(page, "65-tenant-publish-refused")
    page.get_by_test_id("publish-topic").fill("tenants/acme/valve")
    page.get_by_test_id("publish-submit").click()
    expect(result).to_have_attribute("data-ok", "true", timeout=10_000)

    # The server holds the same line when asked directly.
    export = page.evaluate("fetch('/api/export?topic=%23&format=ndjson').then(r => r.text())")
    assert "acme" in export and "beta" not in export and "zeta" not in export
    refused = page.evaluate("fetch('/api/messages?topic=tenants%2Fbeta%2F%23').then(r => r.status)")
    assert refused == 403
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_an_admin_manages_users_and_reads_the_audit_trail(
    page: Page, dashboard: DashboardProcess, users: None
) -> None:
    page.goto(f"{dashboard.url}/?token={TOKEN}#/users")  # the bootstrap admin, as make run prints it
    expect(page.get_by_test_id("whoami")).to_have_text("(bootstrap admin) · admin", timeout=15_000)
    expect(page.locator('[data-user="vic"]')).to_contain_text("viewer")
    page.locator('[data-user="vic"]').get_by_test_id("user-row-role").select_option("operator")
    expect(page.get_by_test_id("users-result")).to_have_attribute("data-ok", "true")
    shot(page, "66-admin-users")

    page.get_by_test_id("nav-audit").click()
    page.get_by_test_id("audit-user").fill("vic")
    page.get_by_test_id("audit-apply").click()
    rows = page.get_by_test_id("audit-row")
    expect(rows.filter(has_text="publish").first).to_have_attribute("data-outcome", "denied")
    expect(page.locator('[data-testid="audit-row"][data-action="login"]').first).to_be_visible()
    shot(page, "67-admin-audit")
    assert PASSWORD not in page.locator("main").inner_text()
    assert not page.errors, page.errors  # type: ignore[attr-defined]
