"""``jobstream worker`` processes beside HTTP-only instances, on one PostgreSQL database: the
queue, shared outputs, stalled workers, and a lease that fences out a worker taken over.

Without a network bus the instances do not see the worker's events live; these tests read the
store through the API (and the stall notices and recoveries, which an instance's own lease
watcher writes, do reach that instance's streams).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from serverproc import ServerProcess, bearer
from ssehelp import SSEReader, collect
from workerproc import WorkerProcess

LEASE = "4"


def cluster_env(database: str) -> dict[str, str]:
    return {"JOBSTREAM_STORE_URL": database, "JOBSTREAM_LEASE_SECONDS": LEASE}


async def until(client: httpx.AsyncClient, job_id: str, check: Callable[[dict], bool]) -> dict:
    async with asyncio.timeout(60):
        while True:
            job: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            if check(job):
                return job
            await asyncio.sleep(0.1)


async def log_of(client: httpx.AsyncClient, job_id: str, up_to: int | None = None) -> list[dict]:
    """The job's stored events from the first (up to seq ``up_to``; else until it ends)."""
    if up_to is None:
        url = f"/api/v1/jobs/{job_id}/events?last_event_id=0"
        return [e.json for e in await collect(client, url)]
    events: list[dict] = []
    async with client.stream("GET", f"/api/v1/jobs/{job_id}/events?last_event_id=0") as r:
        reader = SSEReader(r)
        while not events or events[-1]["seq"] < up_to:
            event = await reader.next()
            assert event is not None
            events.append(event.json)
    return events


async def test_a_worker_process_runs_the_queue_and_its_output_downloads_from_the_server(
    make_server: Callable[..., ServerProcess],
    workers: Callable[..., WorkerProcess],
    database: str,
    tmp_path: Path,
) -> None:
    env = cluster_env(database)
    server = make_server({**env, "JOBSTREAM_WORKERS": "0"}, data_dir=tmp_path / "shared").start()
    worker = workers(env)
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("ops"), timeout=30) as c:
        job = (await c.post("/api/v1/jobs", json={"kind": "pdf", "params": {"pages": 2}})).json()
        done = await until(c, job["id"], lambda j: j["status"] == "completed")
        assert done["result"]["page_count"] == 2
        pdf = await c.get(f"/api/v1/jobs/{job['id']}/result")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        log = await log_of(c, job["id"])
    running = [
        e for e in log if e["type"] == "status_change" and e["data"]["new_status"] == "running"
    ]
    assert len(running) == 1 and running[0]["data"]["worker"].startswith("w-")
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert "running" in worker.log()


async def test_a_killed_worker_is_announced_stalled_then_recovered_once(
    make_server: Callable[..., ServerProcess],
    workers: Callable[..., WorkerProcess],
    database: str,
    tmp_path: Path,
) -> None:
    """Two HTTP-only instances watch the leases; one notice, one recovery, whichever does it.
    (Live, across instances, this needs the Redis bus: ``test_cluster.py``.)"""
    env = cluster_env(database)
    first = make_server({**env, "JOBSTREAM_WORKERS": "0"}, data_dir=tmp_path / "shared").start()
    make_server({**env, "JOBSTREAM_WORKERS": "0"}, data_dir=tmp_path / "shared").start()
    doomed = workers(env)
    async with httpx.AsyncClient(base_url=first.url, headers=bearer("ops"), timeout=30) as c:
        params = {"count": 100_000, "interval_ms": 20}
        job = (await c.post("/api/v1/jobs", json={"kind": "flood", "params": params})).json()
        running = await until(c, job["id"], lambda j: j["status"] == "running" and j["seq"] > 5)
        doomed.kill()  # SIGKILL mid-job
        killed_at = time.monotonic()
        await until(c, job["id"], lambda j: j["state"] == "stalled")
        stalled_after = time.monotonic() - killed_at
        requeued = await until(c, job["id"], lambda j: j["status"] == "queued")
        recovered_after = time.monotonic() - killed_at
        assert 1.0 < stalled_after < recovered_after < 12
        whole = await log_of(c, job["id"], up_to=requeued["seq"])
        # Whole: no snapshot standing in for missing events (a batch half-committed by a killed
        # worker showed as one).
        assert [e["seq"] for e in whole] == list(range(1, len(whole) + 1)), whole[0]
        seen = whole[running["seq"] :]
        stall = [e for e in seen if e["type"] == "progress" and e["data"]["state"] == "stalled"]
        warning = [e for e in seen if e["type"] == "log" and e["data"]["level"] == "warning"]
        kinds = [(e["seq"], e["type"]) for e in seen]
        assert len(stall) == 1 and len(warning) == 1, kinds  # one notice from the two instances
        assert "No word from its worker since" in warning[0]["data"]["message"]
        requeue = seen[-1]
        assert requeue["type"] == "status_change" and requeue["seq"] == requeued["seq"]
        assert requeue["data"]["new_status"] == "queued" and requeue["data"]["reason"]
        # A worker comes back: the job runs again, in one gap-free history.
        workers(env)
        await until(c, job["id"], lambda j: j["status"] == "running")
        await c.post(f"/api/v1/jobs/{job['id']}/cancel")
        await until(c, job["id"], lambda j: j["status"] == "cancelled")
        log = await log_of(c, job["id"])
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert sum(1 for e in log if e["type"] == "progress" and e["data"]["state"] == "stalled") == 1


async def test_a_worker_whose_lease_was_taken_over_writes_nothing_more(
    make_server: Callable[..., ServerProcess],
    workers: Callable[..., WorkerProcess],
    database: str,
    tmp_path: Path,
) -> None:
    """Slow, not dead (SIGSTOP past its lease): when it wakes, its writes are refused, so the
    job's log never shows two runs interleaved."""
    env = cluster_env(database)
    server = make_server({**env, "JOBSTREAM_WORKERS": "0"}, data_dir=tmp_path / "shared").start()
    slow = workers(env)
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("ops"), timeout=30) as c:
        params = {"count": 100_000, "interval_ms": 20}
        job = (await c.post("/api/v1/jobs", json={"kind": "flood", "params": params})).json()
        await until(c, job["id"], lambda j: j["status"] == "running" and j["seq"] > 5)
        slow.signal(signal.SIGSTOP)
        await until(c, job["id"], lambda j: j["status"] == "queued")  # recovered by the server
        workers(env)
        await until(c, job["id"], lambda j: j["status"] == "running")
        slow.signal(signal.SIGCONT)  # it wakes and goes on writing, or tries to
        deadline = time.monotonic() + 20
        while "taken over" not in slow.log():
            assert time.monotonic() < deadline, slow.log()[-2000:]
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        await c.post(f"/api/v1/jobs/{job['id']}/cancel")
        await until(c, job["id"], lambda j: j["status"] == "cancelled")
        log = await log_of(c, job["id"])
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    runs = [
        i
        for i, e in enumerate(log)
        if e["type"] == "status_change" and e["data"]["new_status"] == "running"
    ]
    assert len(runs) == 2
    second_run = [e["data"]["progress"] for e in log[runs[1] :] if e["type"] == "progress"]
    assert second_run and second_run == sorted(second_run), "two runs interleaved"
    assert log[runs[1]]["data"]["worker"] != log[runs[0]]["data"]["worker"]
