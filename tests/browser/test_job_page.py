"""The job page: a video submitted from the form streams to 100 % and plays; cancel; a failure."""

from __future__ import annotations

from collections.abc import Callable

from uihelp import (
    BrowserPage,
    api_job,
    api_submit,
    expect,
    record_progress,
    recorded,
    stays,
    submit_from_form,
    tid,
    wait_progress_at_least,
)

from serverproc import ServerProcess

RUNNING_AND_CONNECTED = """() => {
    const text = (id) => document.querySelector(`[data-testid="${id}"]`)?.textContent ?? '';
    return text('job-status') === 'running' && text('connection-dot') === 'Connected';
}"""

DOT_COLOR = """() => getComputedStyle(
    document.querySelector('[data-testid="connection-dot"] .connection__dot')).backgroundColor"""

VIDEO = '[data-testid="result-video"]'


def test_a_video_submitted_from_the_form_streams_to_100_percent_and_plays(
    browser_page: BrowserPage, no_auth_server: ServerProcess
) -> None:
    page = browser_page.page
    record_progress(page)
    page.goto(f"{no_auth_server.url}/new")
    expect(page.locator(tid("kind-select"))).to_be_enabled()
    page.select_option(tid("kind-select"), "video")
    # The video kind has a fixed set of models: a choice, not a text box.
    model = page.locator(tid("param-model"))
    expect(model).to_have_js_property("tagName", "SELECT")
    options = model.locator("option").all_text_contents()
    assert [o for o in options if o != "(default)"] == ["sora-2", "sora-2-pro"], options
    expect(page.locator(tid("param-fail_at_step"))).to_be_hidden()
    page.fill(tid("param-prompt"), "A lighthouse at dusk, waves rolling in")
    browser_page.screenshot("form", docs="submit-form.png")
    page.click(tid("submit-button"))

    # The form lands on the job page, which streams: running, the green dot, the bar moving.
    page.wait_for_url("**/jobs/*")
    job_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator(tid("job-id"))).to_have_text(job_id)
    page.wait_for_function(RUNNING_AND_CONNECTED)
    assert page.evaluate(DOT_COLOR) == "rgb(34, 197, 94)"  # --green-dot
    expect(page.locator(tid("connection-dot-transport"))).to_have_text("via SSE")
    wait_progress_at_least(page, 40)
    expect(page.locator(tid("log-lines")).locator("li").first).to_be_visible()
    expect(page.locator(tid("job-step"))).to_contain_text("/8 · ")
    browser_page.screenshot("running", docs="job-page-running.png")

    expect(page.locator(tid("job-status"))).to_have_text("completed")
    bar = page.locator(tid("job-progress"))
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator(tid("job-percent"))).to_have_text("100%")
    expect(page.locator(tid("job-step"))).to_contain_text("Step 8/8")
    seen = recorded(page)
    steps = [value for value in seen["progress"] if 0 < value < 100]
    assert len(steps) >= 3, f"the bar jumped instead of moving: {seen['progress']}"
    assert seen["progress"] == sorted(seen["progress"]), seen["progress"]
    assert "open" in seen["connection"], seen["connection"]
    assert seen["status"][-1] == "completed"
    # One log panel: the latest five lines, expandable to the whole log in the same place.
    expect(page.locator(tid("log-lines")).locator("li")).to_have_count(5)
    expect(page.locator(tid("log-full"))).to_have_count(0)
    expect(page.locator(".logs ol")).to_have_count(1)
    expect(page.locator(tid("log-count"))).to_have_text("(8 lines)")
    page.click(tid("log-expand"))
    expect(page.locator(tid("log-full")).locator("li")).to_have_count(8)
    expect(page.locator(tid("log-lines"))).to_have_count(0)
    expect(page.locator(".logs ol")).to_have_count(1)
    page.click(tid("log-expand"))
    expect(page.locator(tid("log-lines")).locator("li")).to_have_count(5)
    expect(page.locator(tid("cancel-button"))).to_have_count(0)
    expect(page.locator(tid("run-again-button"))).to_be_visible()
    assert api_job(no_auth_server.url, job_id)["status"] == "completed"

    # The result is an H.264 MP4 that this Chromium actually plays (muted, so autoplay is allowed).
    video = page.locator(VIDEO)
    expect(video).to_be_visible()
    video.scroll_into_view_if_needed()
    page.evaluate(
        """async (selector) => {
            const video = document.querySelector(selector);
            video.muted = true;
            await video.play();
        }""",
        VIDEO,
    )
    page.wait_for_function(
        """(selector) => {
            const video = document.querySelector(selector);
            return video.readyState >= 2 && video.currentTime > 0 && !video.error;
        }""",
        arg=VIDEO,
    )
    played = page.evaluate(
        """async (selector) => {
            const video = document.querySelector(selector);
            video.pause();
            // A frame from the middle, for the screenshot.
            const seeked = new Promise(
                (resolve) => video.addEventListener('seeked', resolve, { once: true }));
            video.currentTime = video.duration / 2;
            await seeked;
            return { duration: video.duration, width: video.videoWidth, height: video.videoHeight,
                     error: video.error && video.error.code };
        }""",
        VIDEO,
    )
    assert played["error"] is None
    assert played["duration"] > 0
    assert played["width"] > 0 and played["height"] > 0
    page.evaluate("() => window.scrollTo(0, 0)")
    browser_page.screenshot("completed", docs="job-page.png")


def test_cancel_a_running_job_from_its_page(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server({"JOBSTREAM_AUTH": "none", "JOBSTREAM_DEMO_SPEED": "2"}).start()
    page = browser_page.page
    job = api_submit(server.url, "pdf", {"pages": 4})  # 9 s at speed 2
    page.goto(f"{server.url}/jobs/{job['id']}")
    page.wait_for_function(RUNNING_AND_CONNECTED)
    wait_progress_at_least(page, 1)

    cancel = page.locator(tid("cancel-button"))
    expect(cancel).to_be_enabled()
    cancel.click()
    expect(page.locator(tid("job-status"))).to_have_text("cancelled")
    expect(page.locator(tid("job-cancelled"))).to_be_visible()
    expect(page.locator(tid("job-cancelled"))).to_contain_text("Cancelled")
    expect(page.locator(tid("job-progress"))).to_have_attribute("data-status", "cancelled")
    expect(cancel).to_have_count(0)

    # Nothing moves any more: not the bar, not the log, and the server agrees.
    frozen = stays(
        page,
        """() => [
            document.querySelector('[data-testid="job-progress"]').getAttribute('aria-valuenow'),
            document.querySelector('[data-testid="log-count"]').textContent,
            document.querySelector('[data-testid="job-status"]').textContent,
        ]""",
        1.5,
    )
    assert all(value == frozen[0] for value in frozen), frozen
    assert float(frozen[0][0]) < 100
    final = api_job(server.url, job["id"])
    assert final["status"] == "cancelled"
    assert abs(final["progress"] - float(frozen[0][0])) <= 0.05  # aria-valuenow: 1 decimal
    expect(page.locator(tid("result-video"))).to_have_count(0)
    expect(page.locator(tid("result-link"))).to_have_count(0)


def test_a_failing_pdf_job_shows_its_error(
    browser_page: BrowserPage, no_auth_server: ServerProcess
) -> None:
    page = browser_page.page
    page.goto(f"{no_auth_server.url}/new")
    # A test-only field waits behind the form's "Advanced" disclosure, closed at first.
    page.select_option(tid("kind-select"), "pdf")
    expect(page.locator(tid("param-pages"))).to_be_visible()
    expect(page.locator(tid("param-fail_at_step"))).to_be_hidden()
    expect(page.locator(tid("advanced-fields"))).not_to_have_attribute("open", "")
    page.click(tid("advanced-toggle"))
    expect(page.locator(tid("param-fail_at_step"))).to_be_visible()
    job_id = submit_from_form(page, "pdf", {"fail_at_step": "3"})

    error = page.locator(tid("job-error"))
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("Pipeline error: ")
    expect(page.locator(tid("job-status"))).to_have_text("failed")
    expect(page.locator(tid("job-progress"))).to_have_attribute("data-status", "failed")
    expect(page.locator(tid("job-step"))).to_contain_text("Step 3/12")
    expect(page.locator(tid("stream-error"))).to_have_count(0)
    expect(page.locator(tid("result-link"))).to_have_count(0)
    expect(page.locator(tid("cancel-button"))).to_have_count(0)
    failed = api_job(no_auth_server.url, job_id)
    assert failed["status"] == "failed"
    assert failed["error"].startswith("Pipeline error: ")
    expect(error).to_contain_text(failed["error"])
