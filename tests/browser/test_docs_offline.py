"""``/docs`` renders with nothing but the server: no CDN, no validator badge, no Google font.

FastAPI's default docs page loaded Swagger UI from cdn.jsdelivr.net, so without internet access
(or under a strict Content-Security-Policy) it was a blank page. The browser here may reach the
server only: every other request is aborted and recorded, and the test fails if the page needed
one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from uihelp import BrowserPage, expect

from hostproc import HostServer
from serverproc import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route


class Requests:
    """What the page asked for: ``served`` (the server's origin) and ``blocked`` (the rest)."""

    def __init__(self, page: Page, origin: str) -> None:
        self.origin = origin
        self.served: list[str] = []
        self.blocked: list[str] = []
        page.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin:
            self.served.append(parts.path)
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


def assert_operations_render(page: Page, prefix: str = "") -> None:
    submit = page.locator('.opblock-post [data-path="/api/v1/jobs"]')
    expect(submit).to_be_visible()
    expect(page.locator('.opblock-get [data-path="/api/v1/jobs/{job_id}/events"]')).to_be_visible()
    # The operation opens, and its "Try it out" targets this server (under the prefix).
    submit.click()
    expect(page.locator(".opblock-post.is-open")).to_be_visible()
    servers = page.locator(".servers select")
    if prefix:
        expect(servers).to_have_value(prefix)


def test_docs_render_with_every_outside_request_blocked(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server().start()
    page = browser_page.page
    requests = Requests(page, server.url)
    page.goto(f"{server.url}/docs")
    assert_operations_render(page)
    assert requests.blocked == [], f"/docs needed outside requests: {requests.blocked}"
    assert "/docs/assets/swagger-ui-bundle.js" in requests.served
    assert "/openapi.json" in requests.served


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[HostServer]:
    host = HostServer(tmp_path / "host")
    yield host
    host.stop()


def test_docs_under_a_mount_prefix_load_everything_from_under_it(
    browser_page: BrowserPage, mounted: HostServer
) -> None:
    page = browser_page.page
    requests = Requests(page, mounted.url)
    page.goto(f"{mounted.url}/progress/docs")
    assert_operations_render(page, prefix="/progress")
    assert requests.blocked == [], f"/docs needed outside requests: {requests.blocked}"
    outside = [path for path in requests.served if not path.startswith("/progress/")]
    assert outside == [], f"the mounted docs reached outside their prefix: {outside}"
