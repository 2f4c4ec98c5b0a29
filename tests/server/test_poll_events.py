"""The polling page of one job's events (``Accept: application/json``) against a real server:
the same envelopes as the SSE stream, long-polled, a snapshot where the log no longer reaches."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from serverproc import ServerProcess, bearer
from ssehelp import collect

JSON = {"Accept": "application/json"}


@pytest.fixture
async def alice(server: ServerProcess) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("alice"), timeout=30) as c:
        yield c


async def page(client: httpx.AsyncClient, job_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{job_id}/events", params=params, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"events", "next_seq", "done"}
    return body


async def test_polling_pages_deliver_every_event_the_sse_stream_does(
    alice: httpx.AsyncClient,
) -> None:
    submitted = await alice.post("/api/v1/jobs", json={"kind": "pdf", "params": {"pages": 2}})
    job_id = submitted.json()["id"]
    polled: list[dict[str, Any]] = []
    after, pages = 0, 0
    while True:
        body = await page(alice, job_id, after_seq=after, wait=10)
        pages += 1
        polled.extend(body["events"])
        assert body["next_seq"] >= after
        after = body["next_seq"]
        if body["done"]:
            break
        assert pages < 200
    seqs = [e["seq"] for e in polled]
    assert seqs == list(range(1, len(seqs) + 1))  # from the first event, no gaps, no repeats
    assert polled[-1]["type"] == "completed"
    assert any(e["type"] == "log" for e in polled)  # log lines reach a polling client
    # The same envelopes as SSE from the start of the log.
    streamed = await collect(alice, f"/api/v1/jobs/{job_id}/events?last_event_id=0")
    assert [e.json for e in streamed] == polled


async def test_without_after_seq_the_page_is_the_snapshot_and_a_finished_job_is_done(
    alice: httpx.AsyncClient,
) -> None:
    submitted = await alice.post("/api/v1/jobs", json={"kind": "character", "params": {}})
    job_id = submitted.json()["id"]
    await collect(alice, f"/api/v1/jobs/{job_id}/events")
    body = await page(alice, job_id)
    (snapshot,) = body["events"]
    assert snapshot["type"] == "snapshot" and snapshot["data"]["status"] == "completed"
    assert body["next_seq"] == snapshot["seq"] and body["done"] is True
    # Past the end: nothing, done, and no waiting on a finished job.
    started = time.monotonic()
    after_end = await page(alice, job_id, after_seq=snapshot["seq"], wait=5)
    assert after_end == {"events": [], "next_seq": snapshot["seq"], "done": True}
    assert time.monotonic() - started < 2


async def test_a_long_poll_waits_for_the_next_event_or_the_wait(
    alice: httpx.AsyncClient,
) -> None:
    submitted = await alice.post(
        "/api/v1/jobs", json={"kind": "forever", "params": {"interval_ms": 300}}
    )
    job_id = submitted.json()["id"]
    try:
        first = await page(alice, job_id, after_seq=0)
        after = first["next_seq"]
        started = time.monotonic()
        body = await page(alice, job_id, after_seq=after, wait=10)
        assert body["events"] and body["events"][0]["seq"] == after + 1
        assert time.monotonic() - started < 5 and body["done"] is False
        # A seq beyond the log: a snapshot, as on a stream.
        beyond = await page(alice, job_id, after_seq=10**9)
        assert [e["type"] for e in beyond["events"]] == ["snapshot"]
    finally:
        await alice.post(f"/api/v1/jobs/{job_id}/cancel")


async def test_a_trimmed_log_gives_a_snapshot_first(make_server: Any) -> None:
    server = make_server(env={"JOBSTREAM_MAX_EVENTS_PER_JOB": "10"}).start()
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("alice"), timeout=30) as c:
        submitted = await c.post("/api/v1/jobs", json={"kind": "pdf", "params": {"pages": 1}})
        job_id = submitted.json()["id"]
        await collect(c, f"/api/v1/jobs/{job_id}/events")
        body = await page(c, job_id, after_seq=2)
    assert [e["type"] for e in body["events"]] == ["snapshot"]
    assert body["events"][0]["data"]["status"] == "completed" and body["done"] is True


async def test_sse_is_still_the_default_and_unknown_jobs_are_404(alice: httpx.AsyncClient) -> None:
    missing = await alice.get("/api/v1/jobs/nope/events", headers=JSON)
    assert missing.status_code == 404
    submitted = await alice.post("/api/v1/jobs", json={"kind": "character", "params": {}})
    job_id = submitted.json()["id"]
    streamed = await collect(alice, f"/api/v1/jobs/{job_id}/events")
    assert streamed[0].event == "snapshot"
    schema = (await alice.get("/openapi.json")).json()
    content = schema["paths"]["/api/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in content and "application/json" in content
