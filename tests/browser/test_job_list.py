"""The job list updates live, without a reload, when jobs are submitted elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable

from uihelp import NO_AUTH, PHONE, BrowserPage, api_cancel, api_job, api_submit, expect, tid

from serverproc import ServerProcess


def wait_for_status(url: str, job_id: str, status: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while api_job(url, job_id)["status"] != status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}"
        time.sleep(0.05)


def test_the_list_shows_a_job_submitted_from_the_api_live_until_it_completes(
    browser_page: BrowserPage, no_auth_server: ServerProcess
) -> None:
    page = browser_page.page
    url = no_auth_server.url
    navigations: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )
    page.goto(f"{url}/")
    expect(page.locator(tid("list-connection"))).to_have_text("Connected")
    expect(page.locator(tid("job-list"))).to_contain_text("No jobs yet")
    page.evaluate("window.__marker = 'no reload'")

    job = api_submit(url, "video", {"prompt": "Submitted from a script"})
    row = page.locator(tid(f"job-row-{job['id']}"))
    expect(row).to_be_visible()
    expect(row).to_contain_text("video")
    running = row.get_attribute("data-status")
    assert running in ("queued", "running"), running
    expect(row).to_have_attribute("data-status", "completed")
    expect(row.locator(tid("row-percent"))).to_have_text("100%")
    expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    assert api_job(url, job["id"])["status"] == "completed"

    # More jobs, in every state, for the documentation's screenshot of the list.
    failed = api_submit(url, "pdf", {"pages": 3, "fail_at_step": 2})
    cancelled = api_submit(url, "task", {"language": "en"})
    expect(page.locator(tid(f"job-row-{cancelled['id']}"))).to_have_attribute(
        "data-status", "running"
    )
    api_cancel(url, cancelled["id"])
    character = api_submit(url, "character", {"name": "Ada", "age": 36})
    expect(page.locator(tid(f"job-row-{failed['id']}"))).to_have_attribute("data-status", "failed")
    expect(page.locator(tid(f"job-row-{cancelled['id']}"))).to_have_attribute(
        "data-status", "cancelled"
    )
    expect(page.locator(tid(f"job-row-{character['id']}"))).to_have_attribute(
        "data-status", "completed"
    )
    rendering = api_submit(url, "video", {"prompt": "A second video"})
    rendering_row = page.locator(tid(f"job-row-{rendering['id']}"))
    page.wait_for_function(
        """(id) => {
            const row = document.querySelector(`[data-testid="job-row-${id}"] [role=progressbar]`);
            return row !== null && Number(row.getAttribute('aria-valuenow')) >= 30;
        }""",
        arg=rendering["id"],
    )
    rows = page.locator(f"{tid('job-list')} > li")
    expect(rows).to_have_count(5)
    assert rows.first.get_attribute("data-testid") == f"job-row-{rendering['id']}"  # newest first
    browser_page.screenshot("all-states", docs="job-list.png")
    expect(rendering_row).to_have_attribute("data-status", "completed")

    assert page.evaluate("window.__marker") == "no reload"
    assert len(navigations) == 1, navigations


def test_rows_say_what_each_job_is_the_filters_narrow_them_and_older_pages_load(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    """One worker: a character completes, a pdf fails, a ``forever`` job holds the worker, and
    110 pdf jobs wait in the queue behind it: more than the list's first 100."""
    server = make_server({**NO_AUTH, "JOBSTREAM_WORKERS": "1"}).start()
    url = server.url
    ada = api_submit(url, "character", {"name": "Ada", "age": 36})
    wait_for_status(url, ada["id"], "completed")
    broken = api_submit(url, "pdf", {"pages": 3, "fail_at_step": 1})
    wait_for_status(url, broken["id"], "failed")
    busy = api_submit(url, "forever", {"interval_ms": 600_000})  # one report, then quiet
    wait_for_status(url, busy["id"], "running")
    video = api_submit(url, "video", {"prompt": "A fox at dusk"})
    queued = [api_submit(url, "pdf", {"pages": n}) for n in range(1, 111)]

    page = browser_page.page
    page.goto(f"{url}/")
    expect(page.locator(tid("list-connection"))).to_have_text("Connected")
    rows = page.locator(f"{tid('job-list')} > li")
    newest = page.locator(tid(f"job-row-{queued[-1]['id']}"))
    expect(newest.locator(tid("row-title"))).to_have_text("110 pages")
    expect(newest.locator(tid("row-kind"))).to_have_text("PDF")
    expect(rows).to_have_count(100)  # the newest 100, as the live stream opens with
    expect(page.locator(tid(f"job-row-{ada['id']}"))).to_have_count(0)  # on a later page

    # Paging: the API's cursor, until the oldest job shows up and no more pages are left.
    more = page.locator(tid("list-more"))
    more.click()
    expect(rows).to_have_count(114)
    expect(more).to_have_count(0)
    ada_row = page.locator(tid(f"job-row-{ada['id']}"))
    expect(ada_row.locator(tid("row-title"))).to_have_text("Ada")
    expect(ada_row.locator(tid("row-kind"))).to_have_text("Character")
    video_row = page.locator(tid(f"job-row-{video['id']}"))
    expect(video_row.locator(tid("row-title"))).to_have_text("A fox at dusk")
    assert "A fox at dusk" in (video_row.get_by_role("link").get_attribute("aria-label") or "")

    # Filters: by status, by kind, both; each asks the API too, so older jobs are found at once.
    page.reload()
    expect(rows).to_have_count(100)
    page.select_option(tid("list-filter-status"), "failed")
    expect(rows).to_have_count(1)
    expect(page.locator(tid(f"job-row-{broken['id']}"))).to_be_visible()
    page.select_option(tid("list-filter-status"), "")
    page.select_option(tid("list-filter-kind"), "character")
    expect(rows).to_have_count(1)
    expect(ada_row).to_be_visible()
    page.select_option(tid("list-filter-kind"), "pdf")
    page.select_option(tid("list-filter-status"), "queued")
    expect(rows).to_have_count(100)
    expect(more).to_be_visible()
    more.click()
    expect(rows).to_have_count(110)
    page.select_option(tid("list-filter-status"), "running")
    page.select_option(tid("list-filter-kind"), "")
    expect(rows).to_have_count(1)
    expect(page.locator(tid(f"job-row-{busy['id']}"))).to_be_visible()
    page.select_option(tid("list-filter-status"), "cancelled")
    expect(page.locator(tid("job-list"))).to_contain_text("No jobs match these filters.")
    api_cancel(url, busy["id"])


def test_on_a_phone_the_list_comes_before_the_form(
    launch: Callable[..., BrowserPage], no_auth_server: ServerProcess
) -> None:
    url = no_auth_server.url
    job = api_submit(url, "video", {"prompt": "A lighthouse at dusk, waves rolling in"})
    api_submit(url, "pdf", {"pages": 4})
    wait_for_status(url, job["id"], "completed")
    phone = launch(viewport=PHONE, suffix="phone")
    page = phone.page
    page.goto(f"{url}/")
    expect(page.locator(tid(f"job-row-{job['id']}"))).to_be_visible()
    list_box = page.locator(".home__list").bounding_box()
    form_box = page.locator(".home__form").bounding_box()
    assert list_box and form_box
    assert list_box["y"] < form_box["y"], (list_box, form_box)
    assert list_box["y"] < 200, list_box  # at the top of the page, not ~800 px down
    assert list_box["width"] <= 375
    # Nothing sticks out sideways: no row is wider than the list, the page does not scroll.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    right = list_box["x"] + list_box["width"]
    for row in page.locator(f"{tid('job-list')} > li").all():
        box = row.bounding_box()
        assert box and box["x"] + box["width"] <= right, (box, list_box)
    phone.screenshot("home", docs="job-list-mobile.png")

    desktop = launch(suffix="desktop")
    desktop.page.goto(f"{url}/")
    expect(desktop.page.locator(tid(f"job-row-{job['id']}"))).to_be_visible()
    wide_list = desktop.page.locator(".home__list").bounding_box()
    wide_form = desktop.page.locator(".home__form").bounding_box()
    assert wide_list and wide_form
    assert wide_form["x"] < wide_list["x"] and abs(wide_form["y"] - wide_list["y"]) < 5
