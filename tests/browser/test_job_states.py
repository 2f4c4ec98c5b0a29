"""What a watcher of one job sees beyond the happy path: a stalled worker and a re-queued job,
the polling transport with the whole log, "Run again" with an ETA learned from the first run,
and a download link for every kind of artifact."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from uihelp import NO_AUTH, PHONE, BrowserPage, api_job, api_submit, expect, tid

from serverproc import ServerProcess
from workerproc import WorkerProcess


def events_of(base_url: str, job_id: str) -> list[dict[str, Any]]:
    """The job's stored events from the first, through the polling page."""
    response = httpx.get(
        f"{base_url}/api/v1/jobs/{job_id}/events",
        params={"after_seq": 0},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_stalled_worker_and_the_re_queued_job_are_shown_on_the_page_and_in_the_list(
    launch: Callable[..., BrowserPage], make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """The server runs no jobs itself; a ``jobstream worker`` beside it (same data folder) runs a
    slow pdf and is killed mid-job: the server's lease watcher announces the stall (a progress
    event with state ``stalled`` and a warning), then re-queues the job."""
    shared = tmp_path / "shared"
    env = {**NO_AUTH, "JOBSTREAM_WORKERS": "0", "JOBSTREAM_LEASE_SECONDS": "6"}
    server = make_server(env, data_dir=shared).start()
    worker = WorkerProcess(shared, {**env, "JOBSTREAM_DEMO_SPEED": "0.5"}).start()
    try:
        job = api_submit(server.url, "pdf", {"pages": 7})
        wait_for(lambda: bool(api_job(server.url, job["id"])["current_step"]))

        desktop = launch()
        page = desktop.page
        page.goto(f"{server.url}/jobs/{job['id']}")
        expect(page.locator(tid("job-status"))).to_have_text("running")
        expect(page.locator(tid("job-what"))).to_have_text("7 pages")
        phone = launch(viewport=PHONE, suffix="list")
        phone.page.goto(f"{server.url}/")
        row = phone.page.locator(tid(f"job-row-{job['id']}"))
        expect(row).to_have_attribute("data-status", "running")
        expect(row.locator(tid("row-condition"))).to_have_count(0)

        worker.kill()  # SIGKILL: its lease goes unrenewed
        stalled = page.locator(tid("job-stalled"))
        expect(stalled).to_be_visible()
        expect(stalled).to_have_attribute("role", "alert")
        expect(stalled).to_contain_text("No word from its worker since")
        expect(page.locator(tid("job-condition"))).to_have_text("Stalled")
        expect(page.locator(tid("job-progress"))).to_have_attribute("data-status", "stalled")
        expect(row).to_have_attribute("data-condition", "stalled")
        expect(row.locator(tid("row-condition"))).to_have_text("Stalled")
        desktop.screenshot("stalled")
        phone.screenshot("stalled")

        # Then the lease expires: back to the queue, with the reason.
        expect(page.locator(tid("job-status"))).to_have_text("queued")
        expect(stalled).to_have_count(0)
        restarted = page.locator(tid("job-restarted"))
        expect(restarted).to_contain_text("Re-queued:")
        expect(restarted).to_contain_text("re-queued because its worker stopped responding")
        expect(row).to_have_attribute("data-condition", "requeued")
        expect(row.locator(tid("row-condition"))).to_have_text("Re-queued")
        expect(row.locator(tid("row-status"))).to_have_text("queued")
        phone.screenshot("requeued")
    finally:
        worker.kill()
    kinds = [
        (e["type"], e["data"].get("state"), e["data"].get("new_status"))
        for e in events_of(server.url, job["id"])
    ]
    assert ("progress", "stalled", None) in kinds and kinds[-1] == ("status_change", None, "queued")


def test_on_the_polling_transport_the_page_shows_every_log_line(
    browser_page: BrowserPage, no_auth_server: ServerProcess
) -> None:
    """With the SSE route and WebSocket refused (a proxy that lets neither through), the page
    falls back to polling, which now reads the job's events: the log is there, finished job or
    running one."""
    page = browser_page.page
    url = no_auth_server.url

    def refuse_streams(route: Any) -> None:
        if "text/event-stream" in (route.request.headers.get("accept") or ""):
            route.fulfill(status=404, json={"detail": "Not Found"})
        else:
            route.continue_()

    page.route("**/api/v1/jobs/*/events*", refuse_streams)
    page.route("**/api/v1/events*", lambda route: route.fulfill(status=404, json={"detail": "x"}))
    page.route_web_socket("**/*", lambda ws: ws.close())

    done = api_submit(url, "pdf", {"pages": 2})
    wait_for(lambda: api_job(url, done["id"])["status"] == "completed")
    page.goto(f"{url}/jobs/{done['id']}")
    expect(page.locator(tid("connection-dot"))).to_have_attribute("data-state", "closed")
    expect(page.locator(tid("job-status"))).to_have_text("completed")
    expect(page.locator(tid("log-empty"))).to_have_count(0)
    expect(page.locator(tid("log-count"))).to_have_text("(12 lines)")
    expect(page.locator(tid("log-lines")).locator("li")).to_have_count(5)
    expect(page.locator(tid("log-lines"))).to_contain_text("Step 12/12: Packaging")

    running = api_submit(url, "video", {"prompt": "Watched by polling"})
    page.goto(f"{url}/jobs/{running['id']}")
    expect(page.locator(tid("connection-dot-transport"))).to_have_text("via polling")
    expect(page.locator(tid("job-status"))).to_have_text("completed")
    expect(page.locator(tid("log-count"))).to_have_text("(8 lines)")
    page.click(tid("log-expand"))
    lines = page.locator(f"{tid('log-full')} li")
    expect(lines).to_have_count(8)
    seqs = [int(s) for s in lines.evaluate_all("(items) => items.map((li) => li.dataset.seq)")]
    assert seqs == sorted(set(seqs)), seqs
    expect(page.locator(tid("result-video"))).to_be_visible()
    browser_page.screenshot("polling")


ETA_SEEN = """(() => {
    window.__eta = [];
    new MutationObserver(() => {
        const id = document.querySelector('[data-testid="job-id"]');
        const step = document.querySelector('[data-testid="job-step"]');
        const eta = document.querySelector('[data-testid="job-eta"]');
        const status = document.querySelector('[data-testid="job-status"]');
        if (!id || !step || !eta || !status || status.textContent !== 'running') return;
        const entry = [id.textContent, step.textContent, eta.textContent];
        const last = window.__eta[window.__eta.length - 1];
        if (!last || entry.some((value, i) => value !== last[i])) window.__eta.push(entry);
    }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
})()"""


def test_run_again_starts_the_same_job_whose_eta_is_known_from_its_first_event(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    """The first run of a kind teaches the ETA: the second shows one from step 1, where the
    first showed "—" until a rate existed."""
    server = make_server({**NO_AUTH, "JOBSTREAM_DEMO_SPEED": "4"}).start()
    page = browser_page.page
    page.add_init_script(ETA_SEEN)
    first = api_submit(server.url, "pdf", {"pages": 3})
    page.goto(f"{server.url}/jobs/{first['id']}")
    expect(page.locator(tid("job-status"))).to_have_text("completed", timeout=30_000)
    first_events = [e for e in events_of(server.url, first["id"]) if e["type"] == "progress"]
    assert first_events[0]["data"]["eta_seconds"] is None  # nothing learned yet
    expect(page.locator(tid("job-eta"))).to_have_text("done")
    expect(page.locator(tid("job-timing"))).to_contain_text("took ")
    took = page.locator(tid("job-elapsed")).text_content()
    assert took and page.locator(tid("job-timing")).text_content().endswith(f"took {took}")
    expect(page.locator(tid("job-params-details"))).not_to_have_attribute("open", "")
    expect(page.locator(tid("job-params"))).to_be_hidden()
    page.click(f"{tid('job-params-details')} summary")
    expect(page.locator(tid("job-params"))).to_be_visible()
    expect(page.locator(tid("job-params"))).to_contain_text('"pages": 3')

    page.wait_for_timeout(300)  # the worker records the run's steps just after it completes
    page.click(tid("run-again-button"))
    page.wait_for_url(lambda u: first["id"] not in u and "/jobs/" in u)
    second_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator(tid("job-status"))).to_have_text("running")
    # While it runs the line under the bar says the same as the figures beside it.
    timing = page.locator(tid("job-timing"))
    expect(timing).to_contain_text(" elapsed")
    expect(timing).to_contain_text(" left")
    expect(page.locator(tid("job-status"))).to_have_text("completed", timeout=30_000)
    second = api_job(server.url, second_id)
    assert (
        second["kind"] == "pdf" and second["params"] == api_job(server.url, first["id"])["params"]
    )
    progress = [e for e in events_of(server.url, second_id) if e["type"] == "progress"]
    learned = progress[0]["data"]["eta_seconds"]
    assert learned is not None and 1.0 < learned < 10.0, progress[0]  # ~4.5 s at speed 4
    # What the page showed in step 1 of each run: "—" the first time, an estimate the second.
    seen: list[list[str]] = page.evaluate("window.__eta")
    step_1 = [(job, eta) for job, step, eta in seen if step.startswith("Step 1/")]
    assert {eta for job, eta in step_1 if job == first["id"]} == {"—"}, seen
    learned_etas = [eta for job, eta in step_1 if job == second_id]
    assert learned_etas and all(eta.startswith("about ") for eta in learned_etas), seen


def test_every_artifact_has_a_download_link(
    browser_page: BrowserPage, no_auth_server: ServerProcess
) -> None:
    page = browser_page.page
    url = no_auth_server.url
    jobs = {
        "pdf": api_submit(url, "pdf", {"pages": 2}),
        "image": api_submit(url, "media", {"name": "Sunrise", "media_type": "image"}),
        "audio": api_submit(url, "media", {"name": "Chime", "media_type": "audio"}),
        "character": api_submit(url, "character", {"name": "Ada", "age": 36}),
    }
    for job in jobs.values():
        wait_for(lambda job=job: api_job(url, job["id"])["status"] == "completed")
    for name, job in jobs.items():
        page.goto(f"{url}/jobs/{job['id']}")
        expect(page.locator(tid("job-status"))).to_have_text("completed")
        link = page.locator(tid("result-link"))
        expect(link).to_be_visible()
        href = link.get_attribute("href")
        assert href and href.endswith(f"/api/v1/jobs/{job['id']}/result"), href
        filename = api_job(url, job["id"])["artifact"]
        if filename is None:  # a JSON result
            expect(link).to_have_text("Download the result (JSON)")
            expect(page.locator(tid("result-json"))).to_contain_text("characterId")
        else:
            expect(link).to_have_text(f"Download {filename['filename']}")
            assert link.get_attribute("download") == filename["filename"]
        if name == "image":
            expect(page.locator(tid("result-image"))).to_be_visible()
            page.wait_for_function(
                "() => document.querySelector('[data-testid=\"result-image\"]').naturalWidth > 0"
            )
            browser_page.screenshot("image")
        if name == "audio":
            expect(page.locator(tid("result-audio"))).to_be_visible()
        response = httpx.get(f"{url}{href[href.index('/api/') :]}", timeout=10)
        assert response.status_code == 200 and response.content
