"""Seed 002's video studio against a real server: the step log, the signed video link, credits.

The seed's hook opens ``new EventSource('/api/v1/videos/{id}/stream?token=...')``: no header,
the token in the query. ``event_source`` does the same and reads unnamed messages (``onmessage``)
until the server closes the stream.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import httpx
import pytest

from serverproc import ServerProcess, bearer, token
from ssehelp import SSEEvent, SSEReader

WaitForJob = Callable[..., Awaitable[dict[str, Any]]]  # the wait_for_job fixture

SERVER_ENV = {
    "JOBSTREAM_DEMO_SPEED": "5",  # a video takes 4 s, a step 0.4-0.6 s
    "JOBSTREAM_INITIAL_CREDITS": "250",  # two videos, then 402
    "JOBSTREAM_RESULT_LINK_SECONDS": "2",
}

SEED_002_STEPS = [
    "🔍 Validating request parameters...",
    "📸 Processing reference image...",
    "🤖 Calling Sora 2 API...",
    "⏳ Waiting for AI processing (this may take 2-5 minutes)...",
    "🎬 Rendering video frames...",
    "🎞️ Encoding video...",
    "☁️ Uploading video...",
    "✅ Finalizing...",
]
STEPS = [{"step": n, "message": m} for n, m in enumerate(SEED_002_STEPS, start=1)]
REQUEST = {
    "prompt": "Test video",  # exactly 10 characters, as in the seed's curl example
    "model": "sora-2",
    "reference_image_url": "https://example.com/image.jpg",
}


def compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
async def anon(profile_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=profile_server.url, timeout=30) as client:
        yield client


def api(server: ServerProcess, user: str) -> httpx.AsyncClient:
    """The seed's front end for REST calls: ``Authorization: Bearer``."""
    return httpx.AsyncClient(base_url=server.url, headers=bearer(user), timeout=30)


async def credits(client: httpx.AsyncClient) -> int:
    me = await client.get("/api/v1/users/me")
    assert me.status_code == 200, me.text
    return int(me.json()["credits"])


async def generate(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/videos/generate", json={**REQUEST, **overrides})
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def event_source(
    server: ServerProcess,
    video_id: str,
    user: str,
    *,
    headers: dict[str, str] | None = None,
    on_message: Callable[[SSEEvent], Any] | None = None,
) -> list[SSEEvent]:
    """The seed's EventSource: ``?token=``, unnamed messages, until the server closes."""
    url = f"/api/v1/videos/{video_id}/stream?token={token(user)}"
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        client.stream("GET", url, headers=headers or {}) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SSEReader(response)
        events = []
        async with asyncio.timeout(20):
            while (event := await reader.next()) is not None:
                assert event.event is None, event  # onmessage: no event: line
                assert event.id is not None and event.id.isdigit()
                assert event.raw.count(b"\ndata: ") == 1  # one data: line
                events.append(event)
                if on_message is not None:
                    outcome = on_message(event)
                    if asyncio.iscoroutine(outcome):
                        await outcome
    ids = [int(e.id or 0) for e in events]
    assert ids == sorted(set(ids))
    return events


def assert_video_ready(message: dict[str, Any], video_id: str) -> str:
    assert list(message) == ["step", "message", "video_url", "status"]
    assert message["step"] == 9 and message["message"] == "🎉 Video ready!"
    assert message["status"] == "completed"
    url = str(message["video_url"])
    assert url.startswith(f"/api/v1/videos/{video_id}/video.mp4?expires=")
    return url


async def test_generate_stream_every_step_then_the_playable_video(
    profile_server: ServerProcess, anon: httpx.AsyncClient
) -> None:
    async with api(profile_server, "vera") as vera:
        assert (await vera.get("/api/v1/users/me")).json() == {"sub": "vera", "credits": 250}
        record = await generate(vera)
        video_id = record["id"]
        assert record["status"] == "queued" and record["video_url"] is None
        assert record["credits_cost"] == 100
        assert record["prompt"] == "Test video" and record["model"] == "sora-2"
        assert record["reference_image_url"] == REQUEST["reference_image_url"]
        assert record["stream_url"] == f"/api/v1/videos/{video_id}/stream"
        assert await credits(vera) == 150

        events = await event_source(profile_server, video_id, "vera")
        messages = [e.json for e in events]
        assert messages[:-1] == STEPS
        url = assert_video_ready(messages[-1], video_id)
        assert events[0].raw == b"id: %s\ndata: %s" % (events[0].id.encode(), compact(STEPS[0]))

        # The link plays in a <video> tag: no header, no cookie, Range requests.
        video = await anon.get(url)
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        with av.open(io.BytesIO(video.content)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert sum(1 for _ in container.decode(stream)) == 48  # 2 s at 24 fps
        partial = await anon.get(url, headers={"Range": "bytes=100-199"})
        assert partial.status_code == 206 and partial.content == video.content[100:200]

        # Tampered, foreign or incomplete links are refused.
        query = parse_qs(urlsplit(url).query)
        expires, signature = query["expires"][0], query["signature"][0]
        base = f"/api/v1/videos/{video_id}/video.mp4"
        for bad in [
            f"{base}?expires={expires}&signature={'0' * len(signature)}",
            f"{base}?expires={int(expires) + 3600}&signature={signature}",
            f"{base}?expires={expires}",
            base,
            f"/api/v1/videos/someotherid/video.mp4?expires={expires}&signature={signature}",
        ]:
            refused = await anon.get(bad)
            assert refused.status_code == 403, (bad, refused.text)

        # The record now holds a fresh link; the completed video keeps its debit.
        done = (await vera.get(f"/api/v1/videos/{video_id}")).json()
        assert done["status"] == "completed" and done["progress"] == 100
        assert done["video_url"].startswith(f"/api/v1/videos/{video_id}/video.mp4?expires=")
        assert await credits(vera) == 150

        # A late client gets the whole log, in order; a resumed one the rest; a finished one 204.
        late = await event_source(profile_server, video_id, "vera")
        assert [e.json for e in late][:-1] == STEPS
        assert [e.id for e in late] == [e.id for e in events]
        fourth = events[3].id or ""
        resumed = await event_source(
            profile_server, video_id, "vera", headers={"Last-Event-ID": fourth}
        )
        assert [e.json for e in resumed][:-1] == STEPS[4:]
        async with httpx.AsyncClient(base_url=profile_server.url) as client:
            over = await client.get(
                f"/api/v1/videos/{video_id}/stream?token={token('vera')}",
                headers={"Last-Event-ID": events[-1].id or ""},
            )
        assert over.status_code == 204

        # The link expires (JOBSTREAM_RESULT_LINK_SECONDS=2 here).
        await asyncio.sleep(max(int(expires) - time.time(), 0) + 1.1)
        expired = await anon.get(url)
        assert expired.status_code == 403 and "expired" in expired.json()["detail"]


async def test_a_client_connecting_mid_run_first_gets_every_step_so_far(
    profile_server: ServerProcess, wait_for_job: WaitForJob
) -> None:
    async with api(profile_server, "lena") as lena:
        video_id = (await generate(lena))["id"]
        await wait_for_job(lena, video_id, lambda job: (job["current_step"] or 0) >= 4)
        events = await event_source(profile_server, video_id, "lena")
    assert [e.json for e in events][:-1] == STEPS
    assert_video_ready(events[-1].json, video_id)


async def test_failure_ends_the_log_and_refunds(profile_server: ServerProcess) -> None:
    async with api(profile_server, "fern") as fern:
        # The canonical submit of a video costs the same 100 credits: the cost is the kind's.
        submitted = await fern.post(
            "/api/v1/jobs",
            json={"kind": "video", "params": {"prompt": "a doomed video", "fail_at_step": 3}},
        )
        assert submitted.status_code == 202
        video_id = submitted.json()["id"]
        assert submitted.json()["cost"] == 100
        assert await credits(fern) == 150
        events = await event_source(profile_server, video_id, "fern")
        assert [e.json for e in events] == [
            *STEPS[:3],
            {"status": "failed", "message": "Pipeline error: Calling model API failed"},
        ]
        assert await credits(fern) == 250
        record = (await fern.get(f"/api/v1/videos/{video_id}")).json()
        assert record["status"] == "failed" and record["video_url"] is None
        assert record["error"] == "Pipeline error: Calling model API failed"


async def test_cancel_stops_the_steps_at_once_and_refunds(profile_server: ServerProcess) -> None:
    async with api(profile_server, "cleo") as cleo:
        video_id = (await generate(cleo))["id"]
        assert await credits(cleo) == 150
        cancelled: list[dict[str, Any]] = []

        async def cancel_after_step_two(event: SSEEvent) -> None:
            if event.json.get("step") == 2:
                response = await cleo.post(f"/api/v1/videos/{video_id}/cancel")
                assert response.status_code == 200, response.text
                cancelled.append(response.json())

        events = await event_source(
            profile_server, video_id, "cleo", on_message=cancel_after_step_two
        )
        assert len(cancelled) == 1 and cancelled[0]["id"] == video_id
        # Not one step after the cancel: the stream ends with it.
        assert [e.json for e in events] == [
            *STEPS[:2],
            {"status": "cancelled", "message": "Cancelled by user"},
        ]
        assert await credits(cleo) == 250
        again = await cleo.post(f"/api/v1/videos/{video_id}/cancel")
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        assert await credits(cleo) == 250  # refunded once


async def test_cancel_of_a_queued_video_refunds_and_402_until_then(
    make_server: Callable[..., ServerProcess],
) -> None:
    idle = make_server({"JOBSTREAM_WORKERS": "0", "JOBSTREAM_INITIAL_CREDITS": "100"}).start()
    async with api(idle, "quinn") as quinn:
        video_id = (await generate(quinn))["id"]
        assert await credits(quinn) == 0
        refused = await quinn.post("/api/v1/videos/generate", json=REQUEST)
        assert refused.status_code == 402
        response = await quinn.post(f"/api/v1/videos/{video_id}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        assert await credits(quinn) == 100
        events = await event_source(idle, video_id, "quinn")
        assert [e.json for e in events] == [{"status": "cancelled", "message": "Cancelled by user"}]
        await generate(quinn)
        assert await credits(quinn) == 0


async def test_too_few_credits_is_402_with_a_clear_message(profile_server: ServerProcess) -> None:
    async with api(profile_server, "pia") as pia:
        await generate(pia)
        await generate(pia)
        assert await credits(pia) == 50
        refused = await pia.post("/api/v1/videos/generate", json=REQUEST)
        assert refused.status_code == 402
        assert refused.json() == {
            "detail": "not enough credits: a video job costs 100 credits and your balance is 50"
        }
        canonical = await pia.post("/api/v1/jobs", json={"kind": "video", "params": REQUEST})
        assert canonical.status_code == 402
        assert await credits(pia) == 50
        mine = (await pia.get("/api/v1/jobs?kind=video")).json()["items"]
        assert len(mine) == 2
        for job in mine:  # free the workers for the next tests
            await pia.post(f"/api/v1/videos/{job['id']}/cancel")
        # Free kinds still go through.
        assert (await pia.post("/api/v1/jobs", json={"kind": "character"})).status_code == 202
        short = await pia.post("/api/v1/videos/generate", json={**REQUEST, "prompt": "too short"})
        assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["body", "prompt"]


async def test_twenty_concurrent_submits_never_overdraw(profile_server: ServerProcess) -> None:
    async with api(profile_server, "rush") as rush:
        responses = await asyncio.gather(
            *(rush.post("/api/v1/videos/generate", json=REQUEST) for _ in range(20))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 2 + [402] * 18
        assert {r.json()["detail"] for r in responses if r.status_code == 402} == {
            "not enough credits: a video job costs 100 credits and your balance is 50"
        }
        assert await credits(rush) == 50
        mine = (await rush.get("/api/v1/jobs?kind=video")).json()["items"]
        assert len(mine) == 2
        for job in mine:
            await rush.post(f"/api/v1/videos/{job['id']}/cancel")


async def test_auth_and_another_users_video(
    profile_server: ServerProcess, anon: httpx.AsyncClient
) -> None:
    async with api(profile_server, "owen") as owen:
        video_id = (await generate(owen))["id"]
        character = (await owen.post("/api/v1/jobs", json={"kind": "character"})).json()["id"]
        for method, path in [
            ("POST", "/api/v1/videos/generate"),
            ("GET", f"/api/v1/videos/{video_id}"),
            ("GET", f"/api/v1/videos/{video_id}/stream"),
            ("GET", f"/api/v1/videos/{video_id}/stream?token=not-a-jwt"),
            ("POST", f"/api/v1/videos/{video_id}/cancel"),
            ("GET", "/api/v1/users/me"),
        ]:
            response = await anon.request(method, path, json=REQUEST)
            assert response.status_code == 401, (method, path, response.text)
        async with api(profile_server, "mallory") as mallory:
            for method, path in [
                ("GET", f"/api/v1/videos/{video_id}"),
                ("GET", f"/api/v1/videos/{video_id}/stream"),
                ("POST", f"/api/v1/videos/{video_id}/cancel"),
            ]:
                theirs = await mallory.request(method, path)
                missing = await mallory.request(method, path.replace(video_id, "nope"))
                assert theirs.status_code == missing.status_code == 404, path
                assert theirs.json()["detail"] == f"job {video_id!r} not found"
        # A job of another kind is no video.
        assert (await owen.get(f"/api/v1/videos/{character}/stream")).status_code == 404
        assert (await owen.post(f"/api/v1/videos/{character}/cancel")).status_code == 404
        assert (await owen.post(f"/api/v1/videos/{video_id}/cancel")).status_code == 200


def test_openapi_lists_the_routes_under_the_profile_tag(profile_server: ServerProcess) -> None:
    schema = httpx.get(f"{profile_server.url}/openapi.json").json()
    tagged = {
        (path, method)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "profile 002: video studio" in operation.get("tags", [])
    }
    assert tagged == {
        ("/api/v1/videos/generate", "post"),
        ("/api/v1/videos/{video_id}", "get"),
        ("/api/v1/videos/{video_id}/stream", "get"),
        ("/api/v1/videos/{video_id}/cancel", "post"),
        ("/api/v1/videos/{video_id}/video.mp4", "get"),
        ("/api/v1/users/me", "get"),
    }
