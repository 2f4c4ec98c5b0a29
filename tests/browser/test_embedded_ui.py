"""The web UI of a jobstream mounted inside a host FastAPI app (``tests/embedhost.py``, at
``/progress``), in Chromium.

Mounted, the UI loaded ``/assets/...`` from the host's root (404), called ``/api/v1/...`` there,
and its router matched ``/jobs/<id>`` only at the origin's root.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from uihelp import BrowserPage, expect, record_progress, recorded, tid

from hostproc import HostServer


@pytest.fixture
def host(tmp_path: Path) -> Iterator[HostServer]:
    server = HostServer(tmp_path / "host", {"JOBSTREAM_DEMO_SPEED": "5"})
    yield server
    server.stop()


def test_the_ui_under_a_mount_prefix_submits_a_job_and_follows_it_to_completed(
    launch: Callable[..., BrowserPage], host: HostServer
) -> None:
    browser_page = launch()
    page = browser_page.page
    failed: list[str] = []
    page.on(
        "response",
        lambda response: (
            failed.append(f"{response.status} {response.request.method} {response.url}")
            if response.status >= 400
            else None
        ),
    )
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    record_progress(page)
    prefix = f"{host.url}/progress"

    page.goto(f"{prefix}/")
    expect(page.locator(tid("list-connection"))).to_have_text("Connected")
    # The host's own kind is the only one (demo kinds are off in the host).
    expect(page.locator(f"{tid('kind-select')} option")).to_have_text(["resize"])
    images = [f"photo-{i}.png" for i in range(12)]
    page.fill(tid("param-images"), json.dumps(images))
    page.click(tid("submit-button"))
    page.wait_for_url(f"{prefix}/jobs/*")
    job_id = page.url.rsplit("/", 1)[-1]

    expect(page.locator(tid("job-status"))).to_have_text("completed")
    expect(page.locator(tid("job-progress"))).to_have_attribute("aria-valuenow", "100")
    expect(page.locator(tid("job-percent"))).to_have_text("100%")
    seen = recorded(page)
    assert "open" in seen["connection"], seen["connection"]
    link = page.locator(tid("result-link"))
    expect(link).to_have_attribute("href", f"{prefix}/api/v1/jobs/{job_id}/result")

    # Links stay under the prefix, and a reload of each page lands on it.
    page.click("text=← All jobs")
    page.wait_for_url(f"{prefix}/")
    expect(page.locator(tid(f"job-row-{job_id}"))).to_have_attribute("data-status", "completed")
    expect(page.locator(f"{tid(f'job-row-{job_id}')} a")).to_have_attribute(
        "href", f"/progress/jobs/{job_id}"
    )
    page.get_by_role("link", name="New job").click()
    page.wait_for_url(f"{prefix}/new")
    expect(page.get_by_role("heading", name="New job")).to_be_visible()
    for path, visible in [
        ("/new", page.get_by_role("heading", name="New job")),
        (f"/jobs/{job_id}", page.locator(tid("job-status"))),
        ("/", page.locator(tid(f"job-row-{job_id}"))),
    ]:
        page.goto(f"{prefix}{path}")
        expect(visible).to_be_visible()
        page.reload()
        expect(visible).to_be_visible()
    expect(page.locator(tid("job-status"))).to_have_count(0)
    page.goto(f"{prefix}/jobs/{job_id}")
    expect(page.locator(tid("job-status"))).to_have_text("completed")

    assert not failed, f"requests that failed: {failed}"
    outside = [u for u in requests if not u.startswith((f"{prefix}/", "data:"))]
    assert not outside, f"requests outside the mount: {outside}"
    assert any(url.startswith(f"{prefix}/assets/") for url in requests), requests
    assert any(url.startswith(f"{prefix}/api/v1/jobs/{job_id}/events") for url in requests)
