"""Heartbeats, the stream time limit, and connection caps on the canonical SSE stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from serverproc import ServerProcess, bearer
from ssehelp import SSEReader


async def test_heartbeat_comments_then_a_timeout_event_then_close(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server(
        {"JOBSTREAM_SSE_PING_SECONDS": "0.3", "JOBSTREAM_STREAM_TIMEOUT_SECONDS": "1.5"}
    ).start()
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("hal"), timeout=30) as c:
        job = (
            await c.post(
                "/api/v1/jobs", json={"kind": "forever", "params": {"interval_ms": 60_000}}
            )
        ).json()
        started = time.monotonic()
        async with c.stream("GET", f"/api/v1/jobs/{job['id']}/events") as response:
            reader = SSEReader(response)
            events = await reader.until_end()
        took = time.monotonic() - started
        raw = b"".join(reader.chunks)
        assert raw.startswith(b"retry: ")
        assert raw.count(b": ping\n\n") >= 2
        assert events[-1].event == "timeout" and events[-1].json == {"message": "Stream timeout"}
        assert 1.4 < took < 4
        # The client reconnects with its last id and loses nothing.
        last = [e for e in events if e.id][-1].id
        again = await c.get(f"/api/v1/jobs/{job['id']}?wait=0")
        assert again.json()["seq"] >= int(last or 0)
        await c.post(f"/api/v1/jobs/{job['id']}/cancel")


async def test_per_user_stream_cap_is_503_with_retry_after_and_a_quick_reconnect_is_admitted(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"JOBSTREAM_MAX_STREAMS_PER_USER": "2"}).start()
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("ivy"), timeout=30) as c:
        job = (await c.post("/api/v1/jobs", json={"kind": "forever", "params": {}})).json()
        url = f"/api/v1/jobs/{job['id']}/events"
        first = await c.send(c.build_request("GET", url), stream=True)
        second = await c.send(c.build_request("GET", url), stream=True)
        assert first.status_code == second.status_code == 200
        third = await c.get(url)
        assert third.status_code == 503 and third.headers["retry-after"]
        assert "too many open streams for this user" in third.json()["detail"]
        # Another user is not affected.
        other = await c.send(
            c.build_request(
                "GET", url.replace(job["id"], job["id"]), headers=bearer("root", ["admin"])
            ),
            stream=True,
        )
        assert other.status_code == 200
        await other.aclose()
        # Drop one and reconnect at once: admitted, not refused.
        await first.aclose()
        replacement = await c.send(c.build_request("GET", url), stream=True)
        assert replacement.status_code == 200
        for response in (second, replacement):
            await response.aclose()
        await asyncio.sleep(0.2)
        assert server.metric("jobstream_stream_refusals_total", {"transport": "sse"}) == 1
        await c.post(f"/api/v1/jobs/{job['id']}/cancel")
