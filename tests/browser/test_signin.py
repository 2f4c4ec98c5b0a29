"""With JOBSTREAM_AUTH=jwt the UI asks for a token, and then streams the signed-in user's jobs."""

from __future__ import annotations

from collections.abc import Callable

from uihelp import (
    BrowserPage,
    api_submit,
    expect,
    record_progress,
    recorded,
    tid,
)

from serverproc import ServerProcess, bearer, token


def test_sign_in_with_a_token_then_the_list_and_a_job_page_stream(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server({"JOBSTREAM_DEMO_SPEED": "5"}).start()  # jwt auth (the default here)
    page = browser_page.page
    record_progress(page)
    page.goto(f"{server.url}/")
    form = page.locator(tid("signin-form"))
    expect(form).to_be_visible()
    expect(page.get_by_label("Access token")).to_be_visible()
    browser_page.screenshot("signin")

    # A token the server refuses keeps the form up, and says so.
    page.fill(tid("token-input"), "not-a-jwt")
    page.click(tid("signin-button"))
    expect(page.locator(".signin")).to_contain_text("refused the token")

    page.fill(tid("token-input"), token("alice"))
    page.click(tid("signin-button"))
    expect(form).to_have_count(0)
    expect(page.locator(tid("list-connection"))).to_have_text("Connected")
    expect(page.locator(tid("signout-button"))).to_be_visible()

    theirs = api_submit(server.url, "video", {"prompt": "Bob's"}, headers=bearer("bob"))
    mine = api_submit(server.url, "video", {"prompt": "Alice's"}, headers=bearer("alice"))
    row = page.locator(tid(f"job-row-{mine['id']}"))
    expect(row).to_be_visible()
    expect(page.locator(tid(f"job-row-{theirs['id']}"))).to_have_count(0)

    # Into the job page without a reload: it streams with the token.
    row.get_by_role("link").click()
    page.wait_for_url(f"**/jobs/{mine['id']}")
    expect(page.locator(tid("connection-dot"))).to_have_text("Connected")
    expect(page.locator(tid("job-status"))).to_have_text("completed")
    expect(page.locator(tid("job-progress"))).to_have_attribute("aria-valuenow", "100")
    seen = recorded(page)
    assert any(0 < value < 100 for value in seen["progress"]), seen["progress"]
    assert "open" in seen["connection"], seen["connection"]

    # The player's src carries the token (?token=), so the protected file loads.
    page.wait_for_function(
        """() => {
            const video = document.querySelector('[data-testid="result-video"]');
            return video !== null && video.readyState >= 1 && video.duration > 0 && !video.error;
        }"""
    )
    expect(page.locator(tid("stream-error"))).to_have_count(0)

    # Another user's job answers as a missing one.
    page.goto(f"{server.url}/jobs/{theirs['id']}")
    expect(page.get_by_role("heading", name="Job not found")).to_be_visible()
