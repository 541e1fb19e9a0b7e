"""E2E fixtures: the whole stack (mosquitto, redis-server, bridge, 2-worker dashboard with the built
frontend) and headless Debian Chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests import mosquitto_bin
from tests.helpers import REPO, BridgeProcess, DashboardProcess, Process, start_mosquitto, start_redis

pytestmark = pytest.mark.e2e


def pytest_report_header() -> str:
    return mosquitto_bin.describe()  # MOSQUITTO_BIN picks the broker (docs/operations.md)


TOKEN = "e2e-token-0123456789"
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless, and quiet on a machine without outside network (see docs/operations.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session", autouse=True)
def _built_frontend() -> None:
    if not (REPO / "dashboard" / "static" / "index.html").exists():
        pytest.fail("the frontend is not built: run `make frontend` (make test does it for you)")


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def mosquitto(stack_dir: Path) -> Iterator[Process]:
    proc = start_mosquitto(stack_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def redis_server(stack_dir: Path) -> Iterator[Process]:
    proc = start_redis(stack_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def bridge(stack_dir: Path, mosquitto: Process, redis_server: Process) -> Iterator[BridgeProcess]:
    proc = BridgeProcess(stack_dir, mosquitto.port, redis_server.port).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def dashboard(stack_dir: Path, redis_server: Process, bridge: BridgeProcess) -> Iterator[DashboardProcess]:
    proc = DashboardProcess(stack_dir, redis_server.port, workers=2, DASHBOARD_TOKEN=TOKEN).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
    context.close()


def shot(page: Page, name: str) -> Path:
    """Save a screenshot as a test artifact (look at them: would a newcomer understand the page?)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Page, dashboard: DashboardProcess) -> None:
    page.goto(f"{dashboard.url}/?token={TOKEN}")
    page.get_by_test_id("banner-socket").or_(page.get_by_test_id("nav-overview")).first.wait_for(
        timeout=15_000
    )


def pick(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)
