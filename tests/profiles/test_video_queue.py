"""Seed 000's video queue against a real server, read the way the seed's React component does.

The component opens ``new EventSource('/stream/status/{id}')`` on the same origin and sends no
header, so under jwt auth its token is the sign-in cookie; ``watch`` does the same, listens for
``progress`` and ``status`` and stops at ``status``; the server must close right after it.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import av
import httpx
import pytest

from serverproc import ServerProcess, bearer, token
from ssehelp import SSEEvent, SSEReader

WaitForJob = Callable[..., Awaitable[dict[str, Any]]]  # the wait_for_job fixture

SERVER_ENV = {"JOBSTREAM_DEMO_SPEED": "10"}  # a video takes 2 s, a step 0.2-0.3 s

STEP_INFO = [
    "Step 1/8: 🔍 Validating request parameters...",
    "Step 2/8: 📸 Processing reference image...",
    "Step 3/8: 🤖 Calling Sora 2 API...",
    "Step 4/8: ⏳ Waiting for AI processing (this may take 2-5 minutes)...",
    "Step 5/8: 🎬 Rendering video frames...",
    "Step 6/8: 🎞️ Encoding video...",
    "Step 7/8: ☁️ Uploading video...",
    "Step 8/8: ✅ Finalizing...",
]


def browser(server: ServerProcess, user: str) -> httpx.AsyncClient:
    """The seed's page: same origin, signed in (the jobstream_token cookie), no auth header;
    its POSTs carry the page's ``Origin``, as a browser's do (the cookie's CSRF check)."""
    return httpx.AsyncClient(
        base_url=server.url,
        cookies={"jobstream_token": token(user)},
        headers={"Origin": server.url},
        timeout=30,
    )


@pytest.fixture
async def page(profile_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(profile_server, "nozomi") as client:
        yield client


async def generate(client: httpx.AsyncClient, **details: object) -> str:
    response = await client.post("/generate", json={"prompt": "a red fox at dusk", **details})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["job_id"]
    return str(body["job_id"])


async def watch(
    client: httpx.AsyncClient,
    job_id: str,
    *,
    on_event: Callable[[SSEEvent], object] | None = None,
) -> list[SSEEvent]:
    """The component's EventSource: every ``progress`` and the final ``status``, after which the
    server must have closed the stream (nothing else may follow)."""
    async with client.stream(
        "GET", f"/stream/status/{job_id}", headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SSEReader(response)
        events = []
        async with asyncio.timeout(20):
            while (event := await reader.next()) is not None:
                assert event.event in {"progress", "status"}, event
                events.append(event)
                if on_event is not None:
                    outcome = on_event(event)
                    if asyncio.iscoroutine(outcome):
                        await outcome
    assert events and events[-1].event == "status", "the stream closed without a final status"
    assert all(e.event == "progress" for e in events[:-1])
    return events


def assert_progress_shape(event: SSEEvent, job_id: str) -> None:
    data = event.json
    assert data["job_id"] == job_id
    assert data["status"] in {"queued", "running"}
    # The seed calls progress.toFixed(1): it must be a number, never null.
    assert isinstance(data["progress"], int | float) and not isinstance(data["progress"], bool)
    assert 0 <= data["progress"] <= 100
    assert isinstance(data["progress_info"], str) and data["progress_info"]


async def test_generate_stream_every_step_then_completed_and_the_video(
    page: httpx.AsyncClient,
) -> None:
    # Fields the video job does not know are ignored, as the seed's form may send anything.
    job_id = await generate(page, duration_seconds=1.0, priority="high")
    events = await watch(page, job_id)

    progress = events[:-1]
    for event in progress:
        assert_progress_shape(event, job_id)
    percents = [e.json["progress"] for e in progress]
    assert percents == sorted(percents)
    # Every step from the one current at connect time to the last, in order, each once.
    steps = [
        e.json["progress_info"] for e in progress if e.json["progress_info"].startswith("Step")
    ]
    assert steps == STEP_INFO[STEP_INFO.index(steps[0]) :]
    assert progress[-1].json["current_step"] == 8 and progress[-1].json["progress"] == 87.5

    final = events[-1]
    expected = {
        "job_id": job_id,
        "status": "completed",
        "message": "Video ready",
        "progress": 100.0,
        "result_url": f"/result/{job_id}",
    }
    assert final.json == expected
    assert (
        final.raw == b"event: status\ndata: " + json.dumps(expected, separators=(",", ":")).encode()
    )

    video = await page.get(f"/result/{job_id}")
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) == 24  # 1 s at 24 fps
    partial = await page.get(f"/result/{job_id}", headers={"Range": "bytes=0-99"})
    assert partial.status_code == 206 and partial.content == video.content[:100]


async def test_late_client_gets_the_current_state_at_once(
    page: httpx.AsyncClient, wait_for_job: WaitForJob
) -> None:
    job_id = await generate(page)
    # Connect only once the job is at step 4 or later.
    await wait_for_job(page, job_id, lambda job: (job["current_step"] or 0) >= 4)
    started = time.monotonic()
    first: list[float] = []
    events = await watch(page, job_id, on_event=lambda e: first.append(time.monotonic()))
    assert first[0] - started < 0.5
    assert events[0].event == "progress" and events[0].json["current_step"] >= 4
    assert events[0].json["status"] == "running"

    # After the end: its final status at once, then the stream closes.
    again = await watch(page, job_id)
    assert [e.event for e in again] == ["status"]
    assert again[0].json["status"] == "completed"


async def test_a_failed_job_ends_with_status_failed_and_no_result(
    page: httpx.AsyncClient,
) -> None:
    async with httpx.AsyncClient(base_url=page.base_url, headers=bearer("nozomi")) as api:
        before = (await api.get("/api/v1/users/me")).json()["credits"]
        job_id = await generate(page, fail_at_step=3)
        assert (await api.get("/api/v1/users/me")).json()["credits"] == before - 100
        events = await watch(page, job_id)
        assert events[-1].json == {
            "job_id": job_id,
            "status": "failed",
            "message": "Pipeline error: Calling model API failed",
            "progress": 25.0,
        }
        assert events[-2].json["current_step"] == 3
        result = await page.get(f"/result/{job_id}")
        assert result.status_code == 409 and "failed" in result.json()["detail"]
        # The video's credits came back with the failure.
        assert (await api.get("/api/v1/users/me")).json()["credits"] == before


async def test_cancel_ends_the_stream_with_status_cancelled(page: httpx.AsyncClient) -> None:
    job_id = await generate(page)
    cancelled_at: list[int] = []

    async def cancel_at_step_two(event: SSEEvent) -> None:
        if event.event == "progress" and event.json["current_step"] == 2 and not cancelled_at:
            cancelled_at.append(2)
            response = await page.post(f"/api/v1/jobs/{job_id}/cancel")
            assert response.status_code == 202

    events = await watch(page, job_id, on_event=cancel_at_step_two)
    assert cancelled_at == [2]
    assert events[-1].json == {
        "job_id": job_id,
        "status": "cancelled",
        "message": "Cancelled by user",
        "progress": 12.5,
    }
    assert max(e.json["current_step"] or 0 for e in events[:-1]) == 2
    result = await page.get(f"/result/{job_id}")
    assert result.status_code == 409


async def test_nothing_changes_yet_the_state_comes_again_every_few_seconds(
    make_server: Callable[..., ServerProcess],
) -> None:
    # No workers: the job stays queued, so every message after the first is a periodic one.
    idle = make_server({"JOBSTREAM_WORKERS": "0"}).start()
    async with browser(idle, "nozomi") as client:
        job_id = await generate(client)
        arrivals: list[tuple[float, SSEEvent]] = []

        async def note(event: SSEEvent) -> None:
            arrivals.append((time.monotonic(), event))
            if len(arrivals) == 2:
                assert (await client.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 202

        events = await watch(client, job_id, on_event=note)
    queued = {
        "job_id": job_id,
        "status": "queued",
        "progress": 0.0,
        "progress_info": "Waiting in queue",
        "current_step": None,
        "total_steps": None,
        "step_name": None,
        "eta_seconds": None,
    }
    assert [e.json for e in events[:2]] == [queued] * 2
    gap = arrivals[1][0] - arrivals[0][0]
    assert 2.5 <= gap <= 4.5, gap  # every 3 s, not at the 15 s heartbeat
    assert events[-1].json["status"] == "cancelled"


async def test_auth_and_not_found(profile_server: ServerProcess, page: httpx.AsyncClient) -> None:
    job_id = await generate(page)
    async with httpx.AsyncClient(base_url=profile_server.url, timeout=10) as anon:
        for method, path in [
            ("POST", "/generate"),
            ("GET", f"/stream/status/{job_id}"),
            ("GET", f"/result/{job_id}"),
        ]:
            response = await anon.request(method, path, json={"prompt": "x"})
            assert response.status_code == 401, (path, response.text)
    async with browser(profile_server, "mallory") as other:
        for path in [f"/stream/status/{job_id}", f"/result/{job_id}"]:
            theirs = await other.get(path)
            missing = await other.get(path.replace(job_id, "doesnotexist"))
            assert theirs.status_code == missing.status_code == 404
            assert theirs.json()["detail"] == f"job {job_id!r} not found"
    # Another kind's job is not a video of this queue.
    async with httpx.AsyncClient(base_url=profile_server.url, headers=bearer("nozomi")) as api:
        character = (await api.post("/api/v1/jobs", json={"kind": "character"})).json()["id"]
        assert (await page.get(f"/stream/status/{character}")).status_code == 404
        assert (await page.get(f"/result/{character}")).status_code == 404
    # While the job runs, its result is 409; a prompt the video job refuses is 422.
    early = await page.get(f"/result/{job_id}")
    assert early.status_code == 409 and "once it completes" in early.json()["detail"]
    assert (await page.post("/generate", json={"prompt": ""})).status_code == 422
    assert (await page.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 202


def test_openapi_lists_the_routes_under_the_profile_tag(profile_server: ServerProcess) -> None:
    schema = httpx.get(f"{profile_server.url}/openapi.json").json()
    tagged = {
        (path, method)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "profile 000: video queue" in operation.get("tags", [])
    }
    assert tagged == {
        ("/generate", "post"),
        ("/stream/status/{job_id}", "get"),
        ("/result/{job_id}", "get"),
    }
