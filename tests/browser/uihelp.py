"""What the browser tests share: how Chromium is launched, screenshots, and small page helpers."""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from serverproc import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

CHROMIUM = Path(os.environ.get("JOBSTREAM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
UPDATE_DOCS = os.environ.get("JOBSTREAM_UPDATE_SCREENSHOTS", "").strip().lower() not in (
    "",
    "0",
    "false",
)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
TIMEOUT_MS = 15_000
"""Playwright's wait for any one condition; a demo job at the speeds below takes 2-4 s."""

SPEED = 8
"""``JOBSTREAM_DEMO_SPEED`` of most tests: a ``video`` (20 s at speed 1) takes 2.5 s, a ``pdf``
(18 s) 2.25 s."""

NO_AUTH = {"JOBSTREAM_AUTH": "none", "JOBSTREAM_DEMO_SPEED": str(SPEED)}
"""A server with auth none (allowed: the tests' servers listen on 127.0.0.1 only)."""


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: run scripts/ensure-chromium"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed: pip install -e '.[dev]'"
    return None


def tid(value: str) -> str:
    """The CSS selector of a ``data-testid``."""
    return f'[data-testid="{value}"]'


@dataclass
class BrowserPage:
    """A test's page, the errors its scripts threw, and the screenshots it saved."""

    page: Page
    context: BrowserContext
    name: str
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def screenshot(self, suffix: str | None = None, *, docs: str | None = None) -> Path:
        """A full-page screenshot: test-artifacts/screenshots/<test>[-suffix].png, and also
        docs/screenshots/<docs> when JOBSTREAM_UPDATE_SCREENSHOTS=1."""
        path = save_screenshot(self.page, f"{self.name}{'-' + suffix if suffix else ''}", docs=docs)
        self.shots.append(path)
        return path


def save_screenshot(page: Page, name: str, *, docs: str | None = None) -> Path:
    """A full-page screenshot of ``page`` at test-artifacts/screenshots/<name>.png (and at
    docs/screenshots/<docs> when JOBSTREAM_UPDATE_SCREENSHOTS=1)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    if docs and UPDATE_DOCS:
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (DOCS_SCREENSHOTS / docs).write_bytes(path.read_bytes())
    return path


def expect(actual: Any, message: str | None = None) -> Any:
    """Playwright's ``expect`` (imported late, so that this module loads without Playwright and
    the tests can be skipped rather than fail to import); waits up to ``TIMEOUT_MS``."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect(actual, message)


# Page helpers ------------------------------------------------------------------------------------


def progress(page: Page) -> float:
    value = page.get_attribute(tid("job-progress"), "aria-valuenow")
    assert value is not None
    return float(value)


def wait_progress_at_least(page: Page, percent: float, timeout: float = TIMEOUT_MS) -> None:
    page.wait_for_function(
        """(percent) => {
            const bar = document.querySelector('[data-testid="job-progress"]');
            return bar !== null && Number(bar.getAttribute('aria-valuenow')) >= percent;
        }""",
        arg=percent,
        timeout=timeout,
    )


def record_progress(page: Page) -> None:
    """From the next document on, remember every job-progress value and connection state the
    page shows (read back with ``recorded``), checked on every DOM change."""
    page.add_init_script(
        """(() => {
            window.__seen = { progress: [], connection: [], status: [] };
            const note = (list, value) => {
                const last = list[list.length - 1];
                if (value !== null && value !== undefined && last !== value) list.push(value);
            };
            const look = () => {
                const bar = document.querySelector('[data-testid="job-progress"]');
                if (bar) note(window.__seen.progress, Number(bar.getAttribute('aria-valuenow')));
                const dot = document.querySelector('[data-testid="connection-dot"]');
                if (dot) note(window.__seen.connection, dot.getAttribute('data-state'));
                const status = document.querySelector('[data-testid="job-status"]');
                if (status) note(window.__seen.status, status.textContent);
            };
            new MutationObserver(look).observe(document, {
                subtree: true, childList: true, attributes: true, characterData: true,
            });
        })();"""
    )


def recorded(page: Page) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = page.evaluate("window.__seen")
    return seen


def submit_from_form(page: Page, kind: str, params: dict[str, str]) -> str:
    """Fills the submit form on the current page and submits it; returns the new job's id from
    the job page it lands on."""
    page.select_option(tid("kind-select"), kind)
    for name, value in params.items():
        page.fill(tid(f"param-{name}"), value)
    page.click(tid("submit-button"))
    page.wait_for_url("**/jobs/*")
    page.wait_for_selector(tid("job-status"))
    return page.url.rsplit("/", 1)[-1]


def api_job(base_url: str, job_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/api/v1/jobs/{job_id}", headers=headers, timeout=10)
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def api_submit(
    base_url: str, kind: str, params: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    body = {"kind": kind, "params": params}
    response = httpx.post(f"{base_url}/api/v1/jobs", json=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def api_cancel(base_url: str, job_id: str, headers: dict[str, str] | None = None) -> None:
    response = httpx.post(f"{base_url}/api/v1/jobs/{job_id}/cancel", headers=headers, timeout=10)
    assert response.status_code == 202, response.text


def stays(page: Page, script: str, seconds: float) -> list[Any]:
    """The values ``script`` gives over ``seconds`` (sampled every 100 ms)."""
    values = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(page.evaluate(script))
        page.wait_for_timeout(100)
    return values
