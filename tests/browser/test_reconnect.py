"""The server is killed mid-job and restarted: the open page reconnects and catches up by itself."""

from __future__ import annotations

from collections.abc import Callable

from uihelp import (
    BrowserPage,
    api_job,
    api_submit,
    expect,
    progress,
    record_progress,
    recorded,
    save_screenshot,
    tid,
    wait_progress_at_least,
)

from serverproc import ServerProcess

ENV = {"JOBSTREAM_AUTH": "none", "JOBSTREAM_DEMO_SPEED": "5"}
"""A video takes 4 s, time enough to kill the server in the middle of it."""


def test_the_job_page_reconnects_after_a_server_kill_and_restart_and_catches_up(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    first = make_server(ENV).start()
    page = browser_page.page
    navigations: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )
    record_progress(page)
    job = api_submit(first.url, "video", {"prompt": "Survives a crash"})
    page.goto(f"{first.url}/jobs/{job['id']}")
    dot = page.locator(tid("connection-dot"))
    expect(dot).to_have_text("Connected")
    expect(page.locator(tid("job-status"))).to_have_text("running")
    page.evaluate("window.__marker = 'the same document'")
    wait_progress_at_least(page, 25)

    first.kill()  # SIGKILL: no shutdown code runs, every stream is cut
    expect(dot).to_have_attribute("data-state", "reconnecting")
    expect(dot).to_have_text("Reconnecting…")
    # A person notices: a banner across the page, and the bar dimmed.
    banner = page.locator(tid("connection-lost"))
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Connection lost")
    expect(page.locator("article.job-page--offline")).to_have_count(1)
    stalled = progress(page)
    assert stalled < 100
    expect(page.locator(tid("job-status"))).to_have_text("running")
    browser_page.screenshot("server-down")

    second = make_server(ENV, data_dir=first.data_dir, port=first.port).start()
    expect(dot).to_have_text("Connected", timeout=20_000)
    expect(banner).to_have_count(0)
    expect(page.locator(tid("job-status"))).to_have_text("completed", timeout=20_000)
    expect(page.locator(tid("job-progress"))).to_have_attribute("aria-valuenow", "100")
    expect(page.locator(tid("result-video"))).to_be_visible()
    expect(page.locator(tid("stream-error"))).to_have_count(0)

    assert page.evaluate("window.__marker") == "the same document", "the page was reloaded"
    assert len(navigations) == 1, navigations
    seen = recorded(page)
    states = seen["connection"]
    down = states.index("reconnecting")
    assert "open" in states[:down] and "open" in states[down:], states
    assert api_job(second.url, job["id"])["status"] == "completed"
    # The job was re-queued by the restarted server and ran again; the page's full log holds
    # every line the job logged, with no line shown twice.
    page.click(tid("log-expand"))
    lines = page.locator(f"{tid('log-full')} li")
    seqs = [int(seq) for seq in lines.evaluate_all("(items) => items.map((li) => li.dataset.seq)")]
    assert seqs == sorted(set(seqs)), seqs

    # A page opened now replays the job's history, and says why its bar went back to 0 %.
    # (The page that stayed open may miss that notice: the killed server had published events
    # it never stored, and the restarted one numbered the re-queue with the same seqs.)
    later = browser_page.context.new_page()
    later.goto(f"{second.url}/jobs/{job['id']}")
    expect(later.locator(tid("job-status"))).to_have_text("completed")
    expect(later.locator(tid("job-restarted"))).to_contain_text("re-queued because")
    save_screenshot(later, f"{browser_page.name}-opened-later")
    later.close()


def test_after_a_crash_the_open_page_shows_the_same_history_as_a_fresh_one(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    first = make_server(ENV).start()
    page = browser_page.page
    job = api_submit(first.url, "video", {"prompt": "Same story"})
    page.goto(f"{first.url}/jobs/{job['id']}")
    wait_progress_at_least(page, 25)
    first.kill()  # right after an event the page has seen, before the worker stored it
    expect(page.locator(tid("connection-dot"))).to_have_attribute("data-state", "reconnecting")
    second = make_server(ENV, data_dir=first.data_dir, port=first.port).start()
    expect(page.locator(tid("job-status"))).to_have_text("completed", timeout=20_000)

    later = browser_page.context.new_page()
    later.goto(f"{second.url}/jobs/{job['id']}")
    expect(later.locator(tid("job-status"))).to_have_text("completed")
    lines = "(items) => items.map((li) => li.dataset.seq + ' ' + li.textContent)"
    later.click(tid("log-expand"))
    page.click(tid("log-expand"))
    fresh = later.locator(f"{tid('log-full')} li").evaluate_all(lines)
    kept = page.locator(f"{tid('log-full')} li").evaluate_all(lines)
    later.close()
    assert kept == fresh
    expect(page.locator(tid("job-restarted"))).to_be_visible(timeout=1000)
