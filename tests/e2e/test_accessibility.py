"""axe-core (the accessibility test engine) on every page, in the light and the dark theme.

The test browser bypasses the page's Content-Security-Policy to inject axe; the page keeps its CSP.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from bridge.demo import run_demo
from tests.e2e.conftest import TOKEN, shot
from tests.helpers import REPO, DashboardProcess, Process

pytestmark = pytest.mark.e2e

AXE = REPO / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
PAGES = (
    "overview",
    "topics",
    "messages",
    "publish",
    "subscriptions",
    "clients",
    "connection",
    "brokers",
    "users",
    "audit",
)
THEME_KEY = "mqtt-dashboard:theme"
CHARTS_KEY = "mqtt-dashboard:field-charts"
CLIMATE = "demo/building-1/floor-2/room-{}/climate-{}/telemetry"
FIELD_CHARTS = [
    {
        "id": "a11y",
        "title": "Room temperatures",
        "series": [
            {"topic": CLIMATE.format(3, 1), "path": "temperature"},
            {"topic": CLIMATE.format(4, 2), "path": "temperature"},
        ],
    }
]


@pytest.fixture(scope="module")
def demo_data(mosquitto: Process, dashboard: DashboardProcess) -> None:
    """The demo sensors for a few seconds, so every page has rows, charts and values to check."""
    done = threading.Event()
    thread = threading.Thread(
        target=run_demo,
        args=("127.0.0.1", mosquitto.port),
        kwargs={"rate": 4.0, "stop": done, "duration": 5.0, "seed": 16},
        daemon=True,
    )
    thread.start()
    thread.join(20)
    # A saved publish and a publish in the history, so the Publish page shows its lists.
    template = {"name": "Lamp on", "topic": "demo/a11y/lamp", "payload": '{"on": true}', "qos": 1}
    assert api(dashboard, "/api/publish/templates", template)[0] == 201
    assert api(dashboard, "/api/publish", {"topic": "demo/a11y/lamp", "payload": "on"})[0] == 200
    # A user, so the Users page has a row (and the audit trail these changes).
    user = {"username": "a11y-viewer", "password": "a long enough password", "role": "viewer"}
    assert api(dashboard, "/api/users", user)[0] == 201


def api(dashboard: DashboardProcess, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = requests.post(
        dashboard.url + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    return response.status_code, response.json()


@pytest.fixture(params=["light", "dark"])
def themed_page(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    if not AXE.exists():
        pytest.fail("axe-core is not installed: run `cd frontend && npm ci`")
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    context.add_init_script(f"localStorage.setItem({THEME_KEY!r}, {request.param!r})")
    context.add_init_script(f"localStorage.setItem({CHARTS_KEY!r}, {json.dumps(json.dumps(FIELD_CHARTS))})")
    page = context.new_page()
    page.theme = request.param  # type: ignore[attr-defined]
    yield page
    context.close()


def serious(page: Page, where: str) -> list[str]:
    """axe's serious and critical violations on the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, { resultTypes: ['violations'] })"
    )
    lines = []
    for v in result["violations"]:
        if v["impact"] in ("serious", "critical"):
            targets = [_describe(n) for n in v["nodes"][:6]]
            lines.append(f"{where}: {v['id']} ({v['impact']}, {len(v['nodes'])} elements) e.g. {targets}")
    return lines


def _describe(node: dict[str, Any]) -> str:
    """An element axe flagged, with the colours and ratio for contrast failures."""
    target = " ".join(map(str, node["target"]))
    for check in node.get("any", []):
        data = check.get("data")
        if isinstance(data, dict) and "contrastRatio" in data:
            return f"{target} [{data.get('fgColor')} on {data.get('bgColor')}: {data.get('contrastRatio')}]"
    return target


def open_page(page: Page, dashboard: DashboardProcess, view: str) -> None:
    page.goto(f"{dashboard.url}/?token={TOKEN}#/{view}")
    expect(page.get_by_test_id(f"nav-{view}")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("status-socket")).to_contain_text("live", timeout=10_000)


def test_every_page_has_no_serious_or_critical_axe_violation(
    themed_page: Page, dashboard: DashboardProcess, demo_data: None
) -> None:
    page = themed_page
    theme = page.theme  # type: ignore[attr-defined]
    found: list[str] = []
    for view in PAGES:
        open_page(page, dashboard, view)
        assert page.evaluate("document.documentElement.dataset.theme") == theme
        if view == "overview":
            expect(page.get_by_test_id("card-version").get_by_test_id("card-value")).to_contain_text(
                "2.", timeout=15_000
            )
            expect(page.get_by_test_id("field-chart-series")).to_have_count(2)
        elif view == "publish":
            page.get_by_test_id("template-row").first.wait_for(timeout=10_000)
            page.get_by_test_id("recent-publish").first.wait_for(timeout=10_000)
        elif view == "topics":
            page.get_by_test_id("topic-row").first.wait_for(timeout=15_000)
        elif view == "messages":
            page.get_by_test_id("message-row").first.wait_for(timeout=15_000)
        elif view == "connection":
            page.get_by_test_id("connection-port-now").wait_for(timeout=10_000)
        elif view == "brokers":
            page.get_by_test_id("broker-row-default").wait_for(timeout=15_000)
        elif view == "users":
            page.get_by_test_id("user-row").first.wait_for(timeout=10_000)
        elif view == "audit":
            page.get_by_test_id("audit-row").first.wait_for(timeout=10_000)
        page.wait_for_timeout(300)
        found += serious(page, f"{view} ({theme})")
        # The detail panels too: a topic's detail, a message's payload.
        if view == "topics":
            page.locator('[data-testid="topic-row"][aria-expanded]').first.locator(".caret").click()
            leaf = page.locator('[data-testid="topic-row"]:not([aria-expanded])').first
            leaf.click()
            page.get_by_test_id("topic-detail").wait_for()
            page.wait_for_timeout(500)
            found += serious(page, f"topic detail ({theme})")
        if view == "messages":
            page.get_by_test_id("message-row").first.click()
            page.get_by_test_id("payload-view").wait_for()
            found += serious(page, f"message detail ({theme})")
        shot(page, f"16-axe-{view}-{theme}")
    assert not found, "\n".join(found)


def focused(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => { const el = document.activeElement; const s = getComputedStyle(el);
        return { role: el.getAttribute('role'), topic: el.dataset.topic ?? null,
                 expanded: el.getAttribute('aria-expanded'), testid: el.dataset.testid ?? null,
                 outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 } }"""
    )


def test_the_topic_tree_and_the_message_list_work_from_the_keyboard_alone(
    page: Page, dashboard: DashboardProcess, demo_data: None
) -> None:
    open_page(page, dashboard, "topics")
    page.get_by_test_id("topic-row").first.wait_for(timeout=15_000)
    page.get_by_test_id("topics-search").focus()
    # Tab past the search field and the two buttons into the tree: one tab stop, the first row.
    for _ in range(3):
        page.keyboard.press("Tab")
    first = focused(page)
    assert first["role"] == "treeitem" and first["outline"], first
    assert page.locator('[role="tree"] [role="treeitem"][tabindex="0"]').count() == 1
    page.keyboard.press("Home")
    top = focused(page)
    if top["expanded"] == "true":
        page.keyboard.press("ArrowLeft")  # collapse
        assert focused(page)["expanded"] == "false"
    page.keyboard.press("ArrowRight")  # expand
    assert focused(page)["expanded"] == "true"
    page.keyboard.press("ArrowRight")  # into the first child
    child = focused(page)
    assert child["topic"].startswith(top["topic"] + "/"), (top, child)
    page.keyboard.press("ArrowLeft")  # a child goes back to its parent
    assert focused(page)["topic"] == top["topic"]
    # Walk down to a topic with messages of its own and open it.
    for _ in range(40):
        page.keyboard.press("ArrowDown")
        if page.evaluate("document.activeElement.getAttribute('aria-expanded') === null"):
            break
        page.keyboard.press("ArrowRight")
    leaf = focused(page)["topic"]
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("topic-detail-path")).to_have_text(leaf)

    open_page(page, dashboard, "messages")
    page.get_by_test_id("message-row").nth(2).wait_for(timeout=15_000)
    page.get_by_test_id("messages-pause").click()  # hold the rows still while we move
    page.get_by_test_id("message-row").first.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    now = focused(page)
    assert now["testid"] == "message-row" and now["outline"], now
    second_topic = page.evaluate(
        "document.activeElement.querySelector('[data-testid=message-topic]').textContent"
    )
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("payload-view-topic")).to_have_text(second_topic)
    expect(page.get_by_test_id("message-row").nth(2)).to_have_class(re.compile("selected"))
    page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement.closest('[data-row-index]').dataset.rowIndex") == "1"
