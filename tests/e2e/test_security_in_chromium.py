"""Security a person can see in a real browser (issue 11): logout really ends the session, and the
built frontend runs under a Content-Security-Policy that forbids inline script."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.conftest import login, shot
from tests.helpers import DashboardProcess

pytestmark = pytest.mark.e2e

COOKIE = "mqtt_dashboard_session"
RECENT_KEY = "mqtt-dashboard:recent-publishes"
# Collects every CSP violation the page reports (installed before any of the page's own scripts).
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
});
"""


def _session_cookie(page: Page) -> str:
    found = [c["value"] for c in page.context.cookies() if c["name"] == COOKIE]
    assert found, "no session cookie after logging in"
    return found[0]


def _local_storage(page: Page) -> str:
    """Everything in this page's localStorage, keys and values, as one text."""
    return str(page.evaluate("JSON.stringify(Object.entries(localStorage))"))


def _with_cookie(dashboard: DashboardProcess, cookie: str) -> requests.Session:
    session = requests.Session()
    session.cookies.set(COOKIE, cookie)
    return session


def test_logging_out_makes_the_copied_cookie_worthless(page: Page, dashboard: DashboardProcess) -> None:
    login(page, dashboard)
    page.goto(f"{dashboard.url}/#/publish")
    page.get_by_test_id("publish-topic").fill("e2e/door/code")
    page.get_by_test_id("publish-payload").fill("4711")
    page.get_by_test_id("publish-submit").click()
    expect(page.get_by_test_id("publish-result")).to_have_attribute("data-ok", "true", timeout=10_000)
    # Recent publishes live on the server (GET /api/publish/history), never in the browser.
    assert "4711" not in _local_storage(page)
    copied = _session_cookie(page)
    thief = _with_cookie(dashboard, copied)
    assert thief.get(f"{dashboard.url}/api/session", timeout=10).json()["authenticated"] is True

    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-form")).to_be_visible(timeout=10_000)
    shot(page, "30-logged-out")

    # The copy of the cookie no longer works, on whichever worker answers.
    for _ in range(4):
        assert thief.get(f"{dashboard.url}/api/session", timeout=10).json()["authenticated"] is False
        assert thief.get(f"{dashboard.url}/api/subscriptions", timeout=10).status_code == 401
    # Nor in another browser: it gets the login form.
    other = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        other.add_cookies([{"name": COOKIE, "value": copied, "url": dashboard.url}])
        second = other.new_page()
        second.goto(dashboard.url)
        expect(second.get_by_test_id("login-form")).to_be_visible(timeout=15_000)
    finally:
        other.close()
    # And nothing the user published is left in this browser's storage.
    assert page.evaluate(f"localStorage.getItem('{RECENT_KEY}')") is None
    assert "4711" not in _local_storage(page)


def test_the_built_frontend_runs_under_the_content_security_policy(
    page: Page, dashboard: DashboardProcess
) -> None:
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.add_init_script(WATCH_CSP)
    login(page, dashboard)
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=10_000)  # WebSocket allowed
    for view in ("overview", "topics", "messages", "publish", "subscriptions", "clients"):
        page.goto(f"{dashboard.url}/#/{view}")
        expect(page.get_by_test_id(f"nav-{view}")).to_be_visible()
    response: Any = page.goto(dashboard.url)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=10_000)

    assert page.evaluate("window.__csp") == []
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors

    # And the policy does bite: a script injected inline does not run.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        " document.body.appendChild(s); }"
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in page.evaluate("window.__csp"))
