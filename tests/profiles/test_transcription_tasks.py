"""Seed 003's transcription tasks against a real server, read like the seed's client reads them.

The seed's hook uses ``EventSourcePolyfill`` with ``headers: {Authorization: Bearer ...}`` and
listens for ``progress``, ``complete`` and ``error``; ``polyfill_source`` sends the same header
and collects every event until the server closes the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from serverproc import ServerProcess, bearer
from ssehelp import SSEEvent, SSEReader

WaitForJob = Callable[..., Awaitable[dict[str, Any]]]  # the wait_for_job fixture

SERVER_ENV = {"JOBSTREAM_DEMO_SPEED": "10"}  # a task takes 3 s

STATES = ["queued", "running", "downloading", "transcribing", "finalizing"]
PROGRESS_KEYS = ["task_id", "state", "progress", "estimated_time", "updated_at"]


def compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def create_task(server: ServerProcess, user: str, body: Any = None) -> str:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(user)) as client:
        response = await client.post("/api/v1/tasks", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "queued"
    return str(response.json()["task_id"])


async def polyfill_source(
    server: ServerProcess,
    task_id: str,
    user: str,
    *,
    on_event: Callable[[SSEEvent], Any] | None = None,
) -> tuple[httpx.Response, list[SSEEvent]]:
    """``new EventSourcePolyfill(url, {headers: {Authorization: 'Bearer ...'}})``."""
    url = f"/api/v1/sse/tasks/{task_id}/progress"
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        client.stream("GET", url, headers=bearer(user)) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SSEReader(response)
        events = []
        async with asyncio.timeout(20):
            while (event := await reader.next()) is not None:
                events.append(event)
                if on_event is not None:
                    outcome = on_event(event)
                    if asyncio.iscoroutine(outcome):
                        await outcome
    return response, events


def check_progress(events: list[SSEEvent], task_id: str) -> None:
    assert events and all(e.event == "progress" for e in events)
    last_state, last_progress, last_time = 0, 0.0, datetime.min
    for event in events:
        data = event.json
        assert list(data) == PROGRESS_KEYS
        assert data["task_id"] == task_id
        assert STATES.index(data["state"]) >= last_state  # states only move forward
        assert isinstance(data["progress"], float) and data["progress"] >= last_progress
        assert data["estimated_time"] is None or isinstance(data["estimated_time"], int)
        updated = datetime.fromisoformat(data["updated_at"].replace("Z", "+00:00"))
        assert updated.tzinfo is not None and updated.replace(tzinfo=None) >= last_time
        last_state = STATES.index(data["state"])
        last_progress = data["progress"]
        last_time = updated.replace(tzinfo=None)


async def test_task_progress_from_queued_to_complete(profile_server: ServerProcess) -> None:
    task_id = await create_task(
        profile_server, "tess", {"source_url": "https://example.com/talk.mp3", "language": "en"}
    )
    _, events = await polyfill_source(profile_server, task_id, "tess")
    check_progress(events[:-1], task_id)
    states = [e.json["state"] for e in events[:-1]]
    assert {"downloading", "transcribing", "finalizing"} <= set(states)
    assert states[-1] == "finalizing"
    # The ETA is known, and shrinking, while it transcribes.
    etas = [e.json["estimated_time"] for e in events if e.json.get("state") == "transcribing"]
    assert all(isinstance(eta, int) for eta in etas[5:])
    assert etas[-1] < etas[5]
    assert events[-1].event == "complete"
    assert events[-1].raw == b'event: complete\ndata: {"state":"success"}'

    async with httpx.AsyncClient(base_url=profile_server.url, headers=bearer("tess")) as c:
        details = (await c.get(f"/api/v1/tasks/{task_id}")).json()
    assert details["state"] == "success" and details["progress"] == 100
    assert details["result"]["transcript"].startswith("Welcome")

    # Connecting after the end: the outcome at once, then the close.
    _, again = await polyfill_source(profile_server, task_id, "tess")
    assert [(e.event, e.json) for e in again] == [("complete", {"state": "success"})]


async def test_the_current_state_comes_first(
    profile_server: ServerProcess, wait_for_job: WaitForJob
) -> None:
    task_id = await create_task(profile_server, "tess")
    async with httpx.AsyncClient(base_url=profile_server.url, headers=bearer("tess")) as c:
        await wait_for_job(c, task_id, lambda job: job["state"] == "transcribing")
    started = time.monotonic()
    arrivals: list[float] = []
    _, events = await polyfill_source(
        profile_server, task_id, "tess", on_event=lambda e: arrivals.append(time.monotonic())
    )
    assert arrivals[0] - started < 0.5
    assert events[0].event == "progress" and events[0].json["state"] == "transcribing"
    assert events[0].json["progress"] >= 20.0
    assert events[-1].event == "complete"


async def test_a_failed_task_completes_with_failure_and_its_error(
    profile_server: ServerProcess,
) -> None:
    task_id = await create_task(profile_server, "tess", {"fail_at_step": 2})
    _, events = await polyfill_source(profile_server, task_id, "tess")
    check_progress(events[:-1], task_id)
    assert events[-2].json["state"] == "transcribing"
    error = "Transcription failed: the audio could not be decoded"
    assert events[-1].event == "complete"
    assert events[-1].raw == b"event: complete\ndata: " + compact(
        {"state": "failure", "error": error}
    )


async def test_a_cancelled_task_completes_with_cancelled(profile_server: ServerProcess) -> None:
    task_id = await create_task(profile_server, "tess")
    async with httpx.AsyncClient(base_url=profile_server.url, headers=bearer("tess")) as api:
        cancelled: list[int] = []

        async def cancel_while_transcribing(event: SSEEvent) -> None:
            if event.json.get("state") == "transcribing" and not cancelled:
                cancelled.append((await api.post(f"/api/v1/jobs/{task_id}/cancel")).status_code)

        _, events = await polyfill_source(
            profile_server, task_id, "tess", on_event=cancel_while_transcribing
        )
        assert cancelled == [202]
        assert (events[-1].event, events[-1].json) == ("complete", {"state": "cancelled"})
        assert events[-2].json["state"] == "transcribing"
        details = (await api.get(f"/api/v1/tasks/{task_id}")).json()
        assert details["state"] == "cancelled" and details["status"] == "cancelled"


async def test_unknown_or_foreign_task_is_an_error_event_then_close(
    profile_server: ServerProcess,
) -> None:
    mine = await create_task(profile_server, "tess")
    async with httpx.AsyncClient(base_url=profile_server.url, headers=bearer("tess")) as c:
        video = (await c.post("/api/v1/jobs", json={"kind": "character"})).json()["id"]
    for user, task_id in [("tess", "doesnotexist"), ("mallory", mine), ("tess", video)]:
        response, events = await polyfill_source(profile_server, task_id, user)
        assert response.status_code == 200
        assert [(e.event, e.raw) for e in events] == [
            ("error", b'event: error\ndata: {"error":"Task not found"}')
        ]
    async with httpx.AsyncClient(base_url=profile_server.url) as anon:
        for method, path in [
            ("GET", f"/api/v1/sse/tasks/{mine}/progress"),
            ("POST", "/api/v1/tasks"),
            ("GET", f"/api/v1/tasks/{mine}"),
        ]:
            response = await anon.request(method, path)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    async with httpx.AsyncClient(base_url=profile_server.url, headers=bearer("mallory")) as m:
        assert (await m.get(f"/api/v1/tasks/{mine}")).status_code == 404
        bad = await m.post("/api/v1/tasks", json={"language": "english!"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "language"]


async def test_timeout_event_after_the_stream_limit_then_close(
    make_server: Callable[..., ServerProcess],
) -> None:
    # No workers: the task stays queued, so only the time limit ends the stream.
    short = make_server({"JOBSTREAM_STREAM_TIMEOUT_SECONDS": "1", "JOBSTREAM_WORKERS": "0"}).start()
    task_id = await create_task(short, "tess")
    started = time.monotonic()
    _, events = await polyfill_source(short, task_id, "tess")
    elapsed = time.monotonic() - started
    assert [e.event for e in events] == ["progress", "timeout"]
    assert events[0].json["state"] == "queued" and events[0].json["estimated_time"] is None
    assert events[1].raw == b'event: timeout\ndata: {"message":"Stream timeout"}'
    assert 0.9 <= elapsed < 3.0, elapsed


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/tasks", "post"),
        ("/api/v1/tasks/{task_id}", "get"),
        ("/api/v1/sse/tasks/{task_id}/progress", "get"),
    ],
)
def test_openapi_lists_the_routes_under_the_profile_tag(
    profile_server: ServerProcess, path: str, method: str
) -> None:
    schema = httpx.get(f"{profile_server.url}/openapi.json").json()
    assert schema["paths"][path][method]["tags"] == ["profile 003: transcription tasks"]
