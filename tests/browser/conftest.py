"""Headless Chromium for tests that look at the product as a person does: Debian's browser, driven by Playwright.

Debian's ``chromium`` (``.ci/install-browser``, which ``make test`` runs) and never a browser download.
Where it is missing, the browser tests are skipped with the reason, except in CI (``CI=true``), where its
absence fails them. Screenshots go to ``LOYALTY_TEST_ARTIFACTS`` (default ``tests/artifacts/``); a failed
test leaves one of the page it failed on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route

from tests.conftest import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
# Headless start-up without a sandbox (root in a container) and without the calls home that stall on a
# machine with no way out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Long enough for a page of the Prefect UI on a busy two-core machine; a condition, never a pause.
UI_TIMEOUT_MS = 30_000


def route_to_app(page: Page, app: Any, base_url: str) -> None:
    """Answer Chromium's requests under ``base_url`` with an ASGI ``app``, called in-process (no server, no port).

    The app runs on an event loop of its own thread, away from Playwright's.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def handle(route: Route) -> None:
        request = route.request

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as http:
                return await http.request(
                    request.method, request.url, content=request.post_data_buffer, headers=request.headers
                )

        response = pool.submit(asyncio.run, call()).result()
        route.fulfill(status=response.status_code, headers=dict(response.headers), body=response.content)

    page.route(f"{base_url}/**", handle)


def artifacts_dir() -> Path:
    """The folder for the screenshots: ``LOYALTY_TEST_ARTIFACTS``, else ``tests/artifacts/``."""
    folder = Path(os.environ.get("LOYALTY_TEST_ARTIFACTS") or REPO_ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so the page fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    """A page of headless Chromium, 1400 px wide, in a fresh profile; a screenshot of it if the test fails."""
    if not CHROMIUM.exists():
        reason = f"Debian's chromium is not installed ({CHROMIUM}): run `bash .ci/install-browser` (as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
            locale="en-US",
            timezone_id="UTC",  # not the shop's: the schedule must carry the shop's zone itself
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        try:
            yield page
        finally:
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                page.screenshot(path=artifacts_dir() / f"{request.node.name}-failed.png", full_page=True)
            context.close()


@pytest.fixture
def screenshot(page: Page, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """Save the whole page as ``<module>-<step>.png`` in the artifacts folder; return its path."""
    prefix = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")

    def take(step: str) -> Path:
        path = artifacts_dir() / f"{prefix}-{step}.png"
        page.screenshot(path=path, full_page=True, animations="disabled")
        return path

    return take
