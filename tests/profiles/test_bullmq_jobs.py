"""Seed 001's character and media jobs against a real server, read as the seed's hook reads them.

``use_job_sse`` is the seed's ``useJobSSE`` in Python: ``fetch`` with the Bearer header, then for
each network chunk ``decoder.decode(value, {stream: true})``, ``chunk.split('\\n')`` and
``JSON.parse`` of every line that starts with ``data: ``. An event split across two chunks would
make that ``JSON.parse`` throw, so the test asserts every chunk holds whole events only.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from serverproc import ServerProcess, bearer, token

WaitForJob = Callable[..., Awaitable[dict[str, Any]]]  # the wait_for_job fixture

SERVER_ENV = {"JOBSTREAM_DEMO_SPEED": "4"}  # a character takes 1.25 s, a media job 2 s

STATUSES = ["waiting", "active", "completed"]


@dataclass
class HookRun:
    status_code: int = 0
    updates: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[str] = field(default_factory=list)
    completed_with: Any = None
    error: str | None = None
    ended: bool = False
    """The server closed the stream (``reader.read()`` answered ``done``)."""


async def use_job_sse(
    server: ServerProcess, job_id: str, type_: str, token_: str, *, stop_after: int | None = None
) -> HookRun:
    """The seed's hook. It aborts once it saw ``completed``/``failed``; this one keeps reading
    to check that the server closes the stream right after (``stop_after`` aborts after that
    many updates, as the seed's component does when it re-renders)."""
    endpoint = (
        f"/api/v1/sse/jobs/character/{job_id}"
        if type_ == "character"
        else f"/api/v1/sse/jobs/media/{job_id}"
    )
    run = HookRun()
    headers = {"Authorization": f"Bearer {token_}", "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        client.stream("GET", endpoint, headers=headers) as response,
    ):
        run.status_code = response.status_code
        decoder = codecs.getincrementaldecoder("utf-8")()
        async with asyncio.timeout(20):
            async for value in response.aiter_raw():
                chunk = decoder.decode(value)
                run.chunks.append(chunk)
                for line in chunk.split("\n"):
                    if line.startswith("data: "):
                        data = json.loads(line[6:])  # JSON.parse: throws on half an event
                        if data["type"] == "job_update":
                            run.updates.append(data)
                            if data["status"] == "completed":
                                run.completed_with = data["result"]
                            if data["status"] == "failed":
                                run.error = data["failedReason"]
                if stop_after is not None and len(run.updates) >= stop_after:
                    return run
            run.ended = True
    return run


def assert_whole_events(run: HookRun) -> None:
    """Each chunk is one or more whole events: nothing the seed's line splitter would cut."""
    assert run.chunks
    for chunk in run.chunks:
        assert chunk.endswith("\n\n"), repr(chunk)
        for block in chunk[:-2].split("\n\n"):
            lines = block.split("\n")
            assert len(lines) == 1, block  # unnamed: a single data: line, no event: line
            assert lines[0].startswith("data: ") or lines[0].startswith(":"), block


def assert_bullmq_sequence(run: HookRun, job_id: str, last: str) -> None:
    assert run.status_code == 200
    assert_whole_events(run)
    assert run.ended, "the server did not close the stream after the final update"
    assert run.updates[-1]["status"] == last
    assert [u["status"] for u in run.updates[:-1]] == sorted(
        (u["status"] for u in run.updates[:-1]), key=STATUSES.index
    )
    assert all(u["status"] in ("waiting", "active") for u in run.updates[:-1])
    progress = [u["progress"] for u in run.updates]
    assert progress == sorted(progress) or last == "failed"
    for update in run.updates:
        assert set(update) == {"type", "jobId", "status", "progress", "result", "failedReason"}
        assert update["jobId"] == job_id
        assert 0 <= update["progress"] <= 100


async def queue(server: ServerProcess, path: str, user: str, body: Any = None) -> str:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(user), timeout=10) as c:
        response = await c.post(path, json=body) if body is not None else await c.post(path)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert list(payload) == ["data"] and list(payload["data"]) == ["jobId"]
    return str(payload["data"]["jobId"])


async def test_character_from_queue_to_completed(profile_server: ServerProcess) -> None:
    job_id = await queue(
        profile_server, "/api/v1/characters/queue", "kai", {"name": "Test", "age": 25}
    )
    run = await use_job_sse(profile_server, job_id, "character", token("kai"))
    assert_bullmq_sequence(run, job_id, "completed")
    assert [u["progress"] for u in run.updates if u["status"] == "active"][-3:] == [25, 50, 75]
    final = run.updates[-1]
    character_id = final["result"]["characterId"]
    assert uuid.UUID(character_id)
    assert final == {
        "type": "job_update",
        "jobId": job_id,
        "status": "completed",
        "progress": 100,
        "result": {"characterId": character_id, "name": "Test", "age": 25},
        "failedReason": None,
    }
    assert run.completed_with == final["result"] and run.error is None
    # Exact wire bytes of the last event: one data: line of compact JSON, then the close.
    assert run.chunks[-1].endswith("data: " + json.dumps(final, separators=(",", ":")) + "\n\n")


async def test_every_connection_first_gets_the_current_state(
    profile_server: ServerProcess,
) -> None:
    """The seed's component reconnects after each update (its callbacks are effect
    dependencies): each connection's first message must already be the latest state."""
    job_id = await queue(profile_server, "/api/v1/media/queue", "kai", {"media_type": "video"})
    seen: list[dict[str, Any]] = []
    for _ in range(200):
        run = await use_job_sse(profile_server, job_id, "media", token("kai"), stop_after=1)
        assert_whole_events(run)
        seen.append(run.updates[0])
        if run.updates[0]["status"] == "completed":
            break
        await asyncio.sleep(0.05)
    assert seen[-1]["status"] == "completed"
    progress = [u["progress"] for u in seen]
    assert progress == sorted(progress)
    assert len({u["progress"] for u in seen}) >= 3  # it really watched the job move
    result = seen[-1]["result"]
    assert result["media_type"] == "video" and result["content_type"] == "video/mp4"
    assert result["mediaId"] and result["size_bytes"] > 0
    # Once done: the terminal update at once, then the close.
    after = await use_job_sse(profile_server, job_id, "media", token("kai"))
    assert after.ended and [u["status"] for u in after.updates] == ["completed"]


async def test_media_queue_takes_no_body_at_all(profile_server: ServerProcess) -> None:
    job_id = await queue(profile_server, "/api/v1/media/queue", "kai")
    run = await use_job_sse(profile_server, job_id, "media", token("kai"))
    assert_bullmq_sequence(run, job_id, "completed")
    assert run.completed_with["media_type"] == "image"
    assert run.completed_with["filename"] == "Media.png"


async def test_a_failed_job_ends_failed_with_its_reason(profile_server: ServerProcess) -> None:
    job_id = await queue(
        profile_server, "/api/v1/characters/queue", "kai", {"name": "Oops", "fail_at_step": 2}
    )
    run = await use_job_sse(profile_server, job_id, "character", token("kai"))
    assert_bullmq_sequence(run, job_id, "failed")
    assert run.updates[-1] == {
        "type": "job_update",
        "jobId": job_id,
        "status": "failed",
        "progress": 25,
        "result": None,
        "failedReason": "Pipeline error: Generating appearance failed",
    }
    assert run.error == "Pipeline error: Generating appearance failed"
    assert run.completed_with is None


async def test_a_cancelled_job_ends_failed_with_reason_cancelled(
    profile_server: ServerProcess, wait_for_job: WaitForJob
) -> None:
    job_id = await queue(profile_server, "/api/v1/media/queue", "kai", {"name": "never"})
    async with httpx.AsyncClient(base_url=profile_server.url, headers=bearer("kai")) as api:
        await wait_for_job(api, job_id, lambda job: job["status"] == "running")
        first = await use_job_sse(profile_server, job_id, "media", token("kai"), stop_after=1)
        assert first.updates[0]["status"] == "active"
        assert (await api.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 202
    run = await use_job_sse(profile_server, job_id, "media", token("kai"))
    assert run.ended and run.updates[-1]["status"] == "failed"
    assert run.updates[-1]["failedReason"] == "cancelled"
    assert run.error == "cancelled"


async def test_auth_kind_and_ownership(profile_server: ServerProcess) -> None:
    character = await queue(profile_server, "/api/v1/characters/queue", "kai", {})
    async with httpx.AsyncClient(base_url=profile_server.url, timeout=10) as anon:
        for method, path in [
            ("POST", "/api/v1/characters/queue"),
            ("POST", "/api/v1/media/queue"),
            ("GET", f"/api/v1/sse/jobs/character/{character}"),
            ("GET", f"/api/v1/sse/jobs/media/{character}"),
        ]:
            response = await anon.request(method, path)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    # Another user's job, a missing one and a character id under /media/: all not found.
    for user, path in [
        ("mallory", f"/api/v1/sse/jobs/character/{character}"),
        ("mallory", "/api/v1/sse/jobs/character/doesnotexist"),
        ("kai", f"/api/v1/sse/jobs/media/{character}"),
    ]:
        async with httpx.AsyncClient(base_url=profile_server.url, headers=bearer(user)) as c:
            response = await c.get(path)
        assert response.status_code == 404, (user, path)
        assert response.json()["detail"].endswith("not found")
    # Bad bodies are refused with the field named.
    async with httpx.AsyncClient(base_url=profile_server.url, headers=bearer("kai")) as c:
        bad = await c.post("/api/v1/media/queue", json={"media_type": "gif"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "media_type"]
    await use_job_sse(profile_server, character, "character", token("kai"))


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/characters/queue", "post"),
        ("/api/v1/media/queue", "post"),
        ("/api/v1/sse/jobs/character/{job_id}", "get"),
        ("/api/v1/sse/jobs/media/{job_id}", "get"),
    ],
)
def test_openapi_lists_the_routes_under_the_profile_tag(
    profile_server: ServerProcess, path: str, method: str
) -> None:
    schema = httpx.get(f"{profile_server.url}/openapi.json").json()
    assert schema["paths"][path][method]["tags"] == ["profile 001: BullMQ jobs"]
