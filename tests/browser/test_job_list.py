"""The job list updates live, without a reload, when jobs are submitted elsewhere."""

from __future__ import annotations

from uihelp import BrowserPage, api_cancel, api_job, api_submit, expect, tid

from serverproc import ServerProcess


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
