"""Browser tests: the web UI in a real headless Chromium (Debian's, at /usr/bin/chromium), driven
by Python Playwright's sync API against real ``jobstream serve`` subprocesses.

Playwright's own browser download is never used (no ``playwright install``): Chromium is
launched from ``executable_path``; ``scripts/ensure-chromium`` installs it with apt. Without
Chromium or the ``playwright`` package the tests are skipped, and fail under ``CI=true``.

Every test gets its own Chromium with a fresh profile (``launch_persistent_context`` on a temp
dir) and its own server; a full-page screenshot of its page is saved at its end to
``test-artifacts/screenshots/<test>.png`` (gitignored). With ``JOBSTREAM_UPDATE_SCREENSHOTS=1``
the tests that make the documentation's screenshots also write them to ``docs/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from uihelp import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    NO_AUTH,
    TIMEOUT_MS,
    BrowserPage,
    missing_browser,
)

from serverproc import ServerProcess
from services import require_service

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page


NETWORK_ERROR = "Failed to load resource:"


def _test_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)


@pytest.fixture
def launch(
    tmp_path: Path, request: pytest.FixtureRequest, make_server: Callable[..., ServerProcess]
) -> Iterator[Callable[..., BrowserPage]]:
    """``launch(viewport=..., suffix=...)`` opens a Chromium with a fresh profile and returns its
    page. Every page opened is screenshotted at the end of the test, and an uncaught script error
    or an error logged to its console fails the test. (It depends on ``make_server`` so that the
    browsers close, after their last screenshots, before the test's servers are killed.)"""
    missing = missing_browser()
    if missing:
        require_service("chromium", missing)
    from playwright.sync_api import sync_playwright

    opened: list[tuple[BrowserContext, BrowserPage]] = []
    with sync_playwright() as playwright:

        def open_page(viewport: dict[str, int] | None = None, suffix: str = "") -> BrowserPage:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / f"chromium-profile-{len(opened)}"),
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport=viewport or DESKTOP,
                locale="en-US",
                timezone_id="UTC",
                color_scheme="light",
            )
            context.set_default_timeout(TIMEOUT_MS)
            page = context.pages[0] if context.pages else context.new_page()
            name = _test_name(request) + (f"-{suffix}" if suffix else "")
            result = BrowserPage(page=page, context=context, name=name)
            page.on("pageerror", lambda error: result.page_errors.append(str(error)))
            page.on(
                "console",
                lambda message: (
                    result.console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            opened.append((context, result))
            return result

        try:
            yield open_page
            for _, result in opened:
                assert not result.page_errors, f"uncaught errors in the page: {result.page_errors}"
                # The browser logs failed requests (a 401 before the sign-in, a stream cut by a
                # killed server) as errors; anything else the page logged is a bug.
                logged = [m for m in result.console_errors if not m.startswith(NETWORK_ERROR)]
                assert not logged, f"errors logged in the page's console: {logged}"
        finally:
            for context, result in opened:
                try:
                    result.screenshot()
                except Exception as error:  # after a failure the page may be gone
                    print(f"{result.name}: no final screenshot: {error}")
                context.close()


@pytest.fixture
def browser_page(launch: Callable[..., BrowserPage]) -> BrowserPage:
    """A desktop-sized page (1280 x 800)."""
    return launch()


@pytest.fixture
def page(browser_page: BrowserPage) -> Page:
    return browser_page.page


@pytest.fixture
def no_auth_server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A server of the test's own with auth none, at the browser tests' demo speed."""
    return make_server(NO_AUTH).start()
