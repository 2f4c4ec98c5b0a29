"""Resuming the all-jobs stream after a long absence loses nothing, on a real server.

It was the store's oldest 1,000 events merged with the bus's newest 1,024, whatever lay between
silently dropped: with 250 jobs run while the client was away, 77-186 of them never showed
``completed``. Now the store is read page by page from the client's position; past the bound
(``JOBSTREAM_FEED_CATCH_UP_LIMIT``) a snapshot stands for every job whose events are skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from serverproc import ServerProcess, bearer
from ssehelp import SSEEvent, SSEReader, collect

JOBS = 250
EVENTS_PER_JOB = {"count": 20}


async def position_now(client: httpx.AsyncClient) -> str:
    """Connect to the all-jobs stream, take its opening snapshot's id, and leave."""
    async with client.stream("GET", "/api/v1/events") as response:
        first = await SSEReader(response).next()
    assert first is not None and first.event == "snapshot" and first.id is not None
    return first.id


async def run_jobs_while_away(client: httpx.AsyncClient) -> list[str]:
    ids = []
    for _ in range(JOBS):
        body = {"kind": "flood", "params": EVENTS_PER_JOB}
        response = await client.post("/api/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    async with asyncio.timeout(120):
        while True:
            page = (await client.get("/api/v1/jobs?status=completed&limit=200")).json()
            done = len(page["items"])
            if page["next_cursor"]:
                more = await client.get(
                    f"/api/v1/jobs?status=completed&cursor={page['next_cursor']}"
                )
                done += len(more.json()["items"])
            if done >= JOBS:
                return ids
            await asyncio.sleep(0.2)


async def read_until(reader: SSEReader, done: Callable[[list[SSEEvent]], bool]) -> list[SSEEvent]:
    got: list[SSEEvent] = []
    async with asyncio.timeout(60):
        while not done(got):
            event = await reader.next()
            assert event is not None, "the stream ended"
            got.append(event)
    return got


async def job_logs(client: httpx.AsyncClient, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    logs = {}
    for job_id in ids:
        events = await collect(client, f"/api/v1/jobs/{job_id}/events?last_event_id=0")
        logs[job_id] = [e.json for e in events]
    return logs


async def test_a_long_absence_replays_every_event_of_every_job(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server().start()
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("away"), timeout=30) as c:
        since = await position_now(c)
        ids = await run_jobs_while_away(c)
        logs = await job_logs(c, ids)
        total = sum(len(log) for log in logs.values())
        assert total > 1000 + 1024  # more than the old catch-up could hold
        async with c.stream("GET", "/api/v1/events", headers={"Last-Event-ID": since}) as r:
            got = await read_until(SSEReader(r), lambda got: len(got) >= total)
    received: dict[str, list[dict[str, Any]]] = {job_id: [] for job_id in ids}
    for event in got:
        assert event.event != "snapshot", "nothing was skipped: no snapshot"
        received[event.json["job_id"]].append(event.json)
    for job_id in ids:
        assert received[job_id] == logs[job_id], job_id  # nothing missing, twice or different
    positions = [int(e.id or 0) for e in got]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


async def test_past_the_bound_a_snapshot_covers_every_job_whose_events_are_skipped(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"JOBSTREAM_FEED_CATCH_UP_LIMIT": "500"}).start()
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("gone"), timeout=30) as c:
        since = await position_now(c)
        ids = await run_jobs_while_away(c)
        logs = await job_logs(c, ids)

        def snapshot_ended(got: list[SSEEvent]) -> bool:
            return bool(got) and got[-1].event == "snapshot" and got[-1].id is not None

        async with c.stream("GET", "/api/v1/events", headers={"Last-Event-ID": since}) as r:
            got = await read_until(SSEReader(r), snapshot_ended)
        replayed = [e for e in got if e.event != "snapshot"]
        snapshots = [e for e in got if e.event == "snapshot"]
        assert len(replayed) <= 500
        # Replayed events are a prefix of the log, job by job; every job is then in a snapshot
        # with its final state, or was replayed to its end.
        by_job: dict[str, list[dict[str, Any]]] = {}
        for event in replayed:
            by_job.setdefault(event.json["job_id"], []).append(event.json)
        for job_id, events in by_job.items():
            assert events == logs[job_id][: len(events)]
        in_snapshots = {
            item["id"]: item for page in snapshots for item in page.json["data"]["items"]
        }
        for job_id in ids:
            whole = by_job.get(job_id) == logs[job_id]
            assert whole or in_snapshots[job_id]["status"] == "completed", job_id
            if job_id in in_snapshots:
                assert in_snapshots[job_id]["seq"] == logs[job_id][-1]["seq"]
        # Only the last snapshot page moves the client's position; from it, nothing is owed.
        assert all(page.id is None for page in snapshots[:-1])
        last = snapshots[-1].id
        assert last is not None
        async with c.stream("GET", "/api/v1/events", headers={"Last-Event-ID": last}) as r:
            reader = SSEReader(r)
            job = (await c.post("/api/v1/jobs", json={"kind": "character", "params": {}})).json()
            after = await read_until(reader, lambda got: bool(got))
        assert after[0].json["job_id"] == job["id"] and after[0].json["seq"] == 1
