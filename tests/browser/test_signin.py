"""With JOBSTREAM_AUTH=jwt the UI asks for a token and signs the browser in with it
(``POST /api/v1/session`` sets the HttpOnly ``jobstream_token`` cookie); then it streams the
signed-in user's jobs with no token in any URL.

Nothing set that cookie before, so under jwt a page's own ``new EventSource('/stream/status/…')``
(seed 000) or ``new WebSocket('ws://…/ws/jobs/…')`` (seed 004), which send no header, could not
authenticate at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uihelp import (
    BrowserPage,
    api_job,
    api_submit,
    expect,
    record_progress,
    recorded,
    tid,
)

from serverproc import ServerProcess, bearer, token

SEED_SPEED = {"JOBSTREAM_DEMO_SPEED": "8"}  # a video takes 2.5 s, a pdf 2.25 s
ADMIN = bearer("root", ["admin"])


def sign_in(page: Any, url: str, user: str) -> None:
    """Through the UI's form, as a user would."""
    page.goto(f"{url}/")
    page.fill(tid("token-input"), token(user))
    page.click(tid("signin-button"))
    expect(page.locator(tid("signin-form"))).to_have_count(0)
    expect(page.locator(tid("session-user"))).to_have_text(f"Signed in as {user}")


def test_sign_in_with_a_token_then_the_list_and_a_job_page_stream(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server({"JOBSTREAM_DEMO_SPEED": "5"}).start()  # jwt auth (the default here)
    page = browser_page.page
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    record_progress(page)
    page.goto(f"{server.url}/")
    form = page.locator(tid("signin-form"))
    expect(form).to_be_visible()
    expect(page.get_by_label("Access token")).to_be_visible()
    expect(page.locator(tid("session-user"))).to_have_count(0)
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
    expect(page.locator(tid("session-user"))).to_have_text("Signed in as alice")
    # The token is in an HttpOnly cookie: the page's scripts cannot read it.
    assert "jobstream_token" not in page.evaluate("document.cookie")

    theirs = api_submit(server.url, "video", {"prompt": "Bob's"}, headers=bearer("bob"))
    mine = api_submit(server.url, "video", {"prompt": "Alice's"}, headers=bearer("alice"))
    row = page.locator(tid(f"job-row-{mine['id']}"))
    expect(row).to_be_visible()
    expect(page.locator(tid(f"job-row-{theirs['id']}"))).to_have_count(0)

    # Into the job page without a reload: it streams on the cookie.
    row.get_by_role("link").click()
    page.wait_for_url(f"**/jobs/{mine['id']}")
    expect(page.locator(tid("connection-dot"))).to_have_text("Connected")
    expect(page.locator(tid("job-status"))).to_have_text("completed")
    expect(page.locator(tid("job-progress"))).to_have_attribute("aria-valuenow", "100")
    seen = recorded(page)
    assert any(0 < value < 100 for value in seen["progress"]), seen["progress"]
    assert "open" in seen["connection"], seen["connection"]

    # The player's src is a plain same-origin URL: the browser sends the cookie with it.
    page.wait_for_function(
        """() => {
            const video = document.querySelector('[data-testid="result-video"]');
            return video !== null && video.readyState >= 1 && video.duration > 0 && !video.error;
        }"""
    )
    expect(page.locator(tid("stream-error"))).to_have_count(0)
    assert not [url for url in urls if "token=" in url], "a token went into a URL"

    # A reload keeps the sign-in.
    page.reload()
    expect(page.locator(tid("job-status"))).to_have_text("completed")
    expect(page.locator(tid("session-user"))).to_have_text("Signed in as alice")
    expect(form).to_have_count(0)

    # Another user's job answers as a missing one.
    page.goto(f"{server.url}/jobs/{theirs['id']}")
    expect(page.get_by_role("heading", name="Job not found")).to_be_visible()

    # Sign out: the cookie is gone, the form is back, and stays after a reload.
    page.click(tid("signout-button"))
    expect(form).to_be_visible()
    expect(page.locator(tid("session-user"))).to_have_count(0)
    page.reload()
    expect(form).to_be_visible()


SEED_000_PAGE = """async () => {
    // The seed's page: submit, then a plain EventSource on the same origin, no token anywhere.
    const submitted = await fetch('/generate', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ prompt: 'a red fox at dusk' }),
    });
    if (submitted.status !== 200) throw new Error(`POST /generate: ${submitted.status}`);
    const { job_id } = await submitted.json();
    return await new Promise((resolve, reject) => {
        const seen = [];
        const source = new EventSource(`/stream/status/${job_id}`);
        const timer = setTimeout(() => { source.close(); reject(new Error('timed out')); }, 20000);
        source.addEventListener('progress', (event) => {
            seen.push({ event: 'progress', data: JSON.parse(event.data) });
        });
        source.addEventListener('status', (event) => {
            seen.push({ event: 'status', data: JSON.parse(event.data) });
            source.close();
            clearTimeout(timer);
            resolve({ job_id, seen });
        });
        source.onerror = () => {
            source.close();
            clearTimeout(timer);
            reject(new Error(`EventSource failed after ${seen.length} events`));
        };
    });
}"""


def test_seed_000_eventsource_works_after_browser_sign_in(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(SEED_SPEED).start()
    page = browser_page.page
    sign_in(page, server.url, "nozomi")

    result = page.evaluate(SEED_000_PAGE)
    seen = result["seen"]
    progress = [item["data"] for item in seen if item["event"] == "progress"]
    assert len(progress) >= 2, seen
    assert all(isinstance(item["progress"], int | float) for item in progress), progress
    assert any(0 < item["progress"] < 100 for item in progress), progress
    assert seen[-1]["event"] == "status" and seen[-1]["data"]["status"] == "completed", seen[-1]
    assert api_job(server.url, result["job_id"], ADMIN)["owner"] == "nozomi"


SEED_004_PAGE = """async () => {
    // The seed's page: a job, then a plain WebSocket on the same host, no token anywhere.
    const submitted = await fetch('/api/v1/jobs', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ kind: 'pdf', params: { pages: 4 } }),
    });
    if (submitted.status !== 202) throw new Error(`POST /api/v1/jobs: ${submitted.status}`);
    const job = await submitted.json();
    return await new Promise((resolve, reject) => {
        const messages = [];
        const socket = new WebSocket(`ws://${location.host}/ws/jobs/${job.id}`);
        const timer = setTimeout(() => { socket.close(); reject(new Error('timed out')); }, 20000);
        socket.onmessage = (event) => messages.push(JSON.parse(event.data));
        socket.onclose = (event) => {
            clearTimeout(timer);
            resolve({ job_id: job.id, messages, code: event.code, reason: event.reason });
        };
    });
}"""


def test_seed_004_websocket_works_after_browser_sign_in(
    browser_page: BrowserPage, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(SEED_SPEED).start()
    page = browser_page.page
    sign_in(page, server.url, "kenji")

    result = page.evaluate(SEED_004_PAGE)
    messages = result["messages"]
    assert result["code"] == 1000, result  # not 4401: the handshake carried the cookie
    types = [message["type"] for message in messages]
    assert types[-1] == "completed", types
    assert "progress" in types and "status_change" in types, types
    assert all(message["job_id"] == result["job_id"] for message in messages)
    percents = [m["data"]["percent"] for m in messages if m["type"] == "progress"]
    assert percents == sorted(percents) and any(0 < p < 100 for p in percents), percents
    assert messages[-1]["data"]["page_count"] == 4
    assert api_job(server.url, result["job_id"], ADMIN)["owner"] == "kenji"
