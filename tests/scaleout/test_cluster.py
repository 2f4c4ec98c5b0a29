"""Several ``jobstream serve`` instances and ``jobstream worker`` processes on one PostgreSQL
database and one Redis bus (each test on its own database and key prefix): live fan-out from
wherever a job runs, resume on another instance, cancel from anywhere, a Redis restart that loses
nothing, readiness naming the part that is down, and limits counted across instances.

Every gap-free check compares the whole sequence a client received with the job's stored log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from jobstream.store.sql import normalize_url
from pgdb import ADMIN_URL, postgres_database
from redisdb import REDIS_URL, RedisServer
from serverproc import ServerProcess, bearer
from ssehelp import SSEReader, collect
from workerproc import WorkerProcess

pytestmark = pytest.mark.redis

TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def env(database: str, prefix: str) -> dict[str, str]:
    return {
        "JOBSTREAM_STORE_URL": database,
        "JOBSTREAM_BUS_URL": REDIS_URL,
        "JOBSTREAM_REDIS_PREFIX": prefix,
        "JOBSTREAM_LEASE_SECONDS": "30",
    }


def http_only(make_server: Callable[..., ServerProcess], env: dict[str, str], tmp: Path) -> Any:
    return make_server({**env, "JOBSTREAM_WORKERS": "0"}, data_dir=tmp / "shared").start()


async def stored_log(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    return [e.json for e in await collect(client, f"/api/v1/jobs/{job_id}/events?last_event_id=0")]


async def submit(client: httpx.AsyncClient, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/jobs", json={"kind": kind, "params": params})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def until(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.02)


async def status(client: httpx.AsyncClient, job_id: str, wanted: str) -> bool:
    return bool((await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == wanted)


async def ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_a_job_a_worker_runs_streams_live_to_another_instance_without_a_gap(
    make_server: Callable[..., ServerProcess],
    workers: Callable[..., WorkerProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    a = http_only(make_server, env, tmp_path)
    b = http_only(make_server, env, tmp_path)
    workers(env)
    async with (
        httpx.AsyncClient(base_url=a.url, headers=bearer("fan"), timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, headers=bearer("fan"), timeout=30) as on_b,
    ):
        job = await submit(on_a, "flood", {"count": 60, "interval_ms": 50})
        received: list[dict[str, Any]] = []
        status_while_streaming = None
        async with on_b.stream("GET", f"/api/v1/jobs/{job['id']}/events?last_event_id=0") as r:
            reader = SSEReader(r)
            while True:
                event = await reader.next()
                if event is None:
                    break
                received.append(event.json)
                if len(received) == 20:
                    status_while_streaming = (await on_a.get(f"/api/v1/jobs/{job['id']}")).json()
                if event.event in TERMINAL:
                    break
        log = await stored_log(on_a, job["id"])
    assert status_while_streaming is not None and status_while_streaming["status"] == "running"
    assert received[-1]["type"] == "completed"
    assert received == log  # nothing missing, nothing twice, nothing different
    assert [e["seq"] for e in received] == list(range(1, len(received) + 1))


async def test_the_all_jobs_stream_resumes_on_another_instance_losing_and_repeating_nothing(
    make_server: Callable[..., ServerProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    a = make_server(env, data_dir=tmp_path / "shared").start()  # runs the jobs
    b = http_only(make_server, env, tmp_path)
    seen: dict[str, list[int]] = {}
    async with (
        httpx.AsyncClient(base_url=a.url, headers=bearer("feed"), timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.url, headers=bearer("feed"), timeout=60) as on_b,
    ):
        async with on_a.stream("GET", "/api/v1/events") as r:
            reader = SSEReader(r)
            opening = await reader.next()
            assert opening is not None and opening.event == "snapshot"
            jobs = [await submit(on_a, "flood", {"count": 30, "interval_ms": 20}) for _ in range(6)]
            last_id = opening.id
            for _ in range(40):  # part of the way, then away
                event = await reader.next()
                assert event is not None
                if event.event == "snapshot" or event.id is None:
                    continue
                body = event.json
                seen.setdefault(body["job_id"], []).append(body["seq"])
                last_id = event.id
        ids = {job["id"] for job in jobs}
        finished: set[str] = set()
        assert last_id is not None
        async with on_b.stream("GET", "/api/v1/events", headers={"Last-Event-ID": last_id}) as r:
            reader = SSEReader(r)
            async with asyncio.timeout(60):
                while finished != ids:
                    event = await reader.next()
                    assert event is not None
                    if event.event == "snapshot" or event.id is None:
                        continue
                    body = event.json
                    seen.setdefault(body["job_id"], []).append(body["seq"])
                    if body["type"] in TERMINAL:
                        finished.add(body["job_id"])
        for job in jobs:
            log = await stored_log(on_a, job["id"])
            assert seen[job["id"]] == [e["seq"] for e in log], job["id"]


async def test_a_cancel_on_one_instance_reaches_a_job_running_in_a_worker_within_a_second(
    make_server: Callable[..., ServerProcess],
    workers: Callable[..., WorkerProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    a = http_only(make_server, env, tmp_path)
    b = http_only(make_server, env, tmp_path)
    workers(env)
    async with (
        httpx.AsyncClient(base_url=a.url, headers=bearer("stop"), timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, headers=bearer("stop"), timeout=30) as on_b,
    ):
        job = await submit(on_a, "forever", {})
        await until(lambda: status(on_a, job["id"], "running"), 30)
        asked = time.monotonic()
        answer = await on_b.post(f"/api/v1/jobs/{job['id']}/cancel")
        assert answer.status_code in (200, 202), answer.text
        await until(lambda: status(on_a, job["id"], "cancelled"), 10)
        took = time.monotonic() - asked
        # The lease backstop would take a third of the 30 s lease: this is the bus.
        assert took < 2.0, f"cancel took {took:.2f} s"
        log = await stored_log(on_b, job["id"])
    assert log[-1]["type"] == "cancelled"


async def test_a_redis_restart_loses_nothing_and_readiness_names_the_bus(
    make_server: Callable[..., ServerProcess],
    workers: Callable[..., WorkerProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        own = {**env, "JOBSTREAM_BUS_URL": redis.url}
        a = http_only(make_server, own, tmp_path)
        workers(own)
        async with httpx.AsyncClient(base_url=a.url, headers=bearer("blip"), timeout=30) as c:
            assert (await c.get("/readyz")).status_code == 200
            job = await submit(c, "flood", {"count": 120, "interval_ms": 40})
            received: list[dict[str, Any]] = []
            url = f"/api/v1/jobs/{job['id']}/events?last_event_id=0"
            async with c.stream("GET", url) as r:
                reader = SSEReader(r)
                while len(received) < 10:
                    event = await reader.next()
                    assert event is not None
                    received.append(event.json)
                redis.stop()
                await asyncio.sleep(0.5)
                down = await c.get("/readyz")
                assert down.status_code == 503 and "bus" in down.json()["problems"], down.text
                assert "store" not in down.json()["problems"]
                await asyncio.sleep(1.5)
                redis.start()
                async with asyncio.timeout(60):
                    while True:
                        event = await reader.next()
                        assert event is not None, "the stream ended"
                        received.append(event.json)
                        if event.event in TERMINAL:
                            break
            await until(lambda: ready(c), 15)
            log = await stored_log(c, job["id"])
        assert received[-1]["type"] == "completed"
        assert received == log
    finally:
        redis.stop()


async def test_readiness_names_the_store_when_its_database_is_gone(
    make_server: Callable[..., ServerProcess], prefix: str, tmp_path: Path
) -> None:
    async with postgres_database("jobstream_gone") as url:
        env = {"JOBSTREAM_STORE_URL": url, "JOBSTREAM_BUS_URL": REDIS_URL}
        a = http_only(make_server, {**env, "JOBSTREAM_REDIS_PREFIX": prefix}, tmp_path)
        async with httpx.AsyncClient(base_url=a.url, headers=bearer("ops"), timeout=30) as c:
            assert (await c.get("/readyz")).status_code == 200
            name = url.rsplit("/", 1)[1]
            engine = create_async_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
            async with engine.connect() as conn:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            await engine.dispose()
            ready = await c.get("/readyz")
            submit_now = await c.post("/api/v1/jobs", json={"kind": "character", "params": {}})
            listing = await c.get("/api/v1/jobs")
        assert ready.status_code == 503, ready.text
        assert set(ready.json()["problems"]) == {"store"}
        for answer in (submit_now, listing):  # a clear "retry", never a 500
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] and "store" in answer.json()["detail"]


async def test_limits_hold_across_instances(
    make_server: Callable[..., ServerProcess], env: dict[str, str], tmp_path: Path
) -> None:
    limited = {
        **env,
        "JOBSTREAM_MAX_STREAMS_PER_USER": "2",
        "JOBSTREAM_SUBMIT_RATE_PER_MINUTE": "3",
    }
    a = http_only(make_server, limited, tmp_path)
    b = http_only(make_server, limited, tmp_path)
    async with (
        httpx.AsyncClient(base_url=a.url, headers=bearer("lim"), timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, headers=bearer("lim"), timeout=30) as on_b,
        httpx.AsyncClient(base_url=a.url, timeout=30) as anonymous_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as anonymous_b,
    ):
        # Submit rate: three a minute for this user, wherever they submit.
        jobs = [await submit(on_a, "character", {}), await submit(on_b, "character", {})]
        jobs.append(await submit(on_a, "character", {}))
        refused = await on_b.post("/api/v1/jobs", json={"kind": "character", "params": {}})
        assert refused.status_code == 429, refused.text
        # A stream ticket issued by A opens one stream, once, on any instance.
        ticket = (await on_a.post("/api/v1/stream-tickets")).json()["ticket"]
        url = f"/api/v1/jobs/{jobs[0]['id']}/events?ticket={ticket}"
        async with anonymous_b.stream("GET", url) as first:
            assert first.status_code == 200
        reused = await anonymous_a.get(url)
        assert reused.status_code == 401 and "already used" in reused.json()["detail"]
        # Two streams for this user in all: one on each instance, then a third is refused.
        async with (
            on_a.stream("GET", "/api/v1/events") as one,
            on_b.stream("GET", "/api/v1/events") as two,
        ):
            assert one.status_code == 200 and two.status_code == 200
            third = await on_a.get("/api/v1/events")
            assert third.status_code == 503, third.text
            assert "too many open streams for this user" in third.json()["detail"]
        other = await on_b.get(f"/api/v1/jobs/{jobs[0]['id']}", headers=bearer("someone"))
        assert other.status_code in (403, 404)
        # Closed streams free their places, wherever they were.
        async with asyncio.timeout(10):
            while True:
                async with on_b.stream("GET", "/api/v1/events") as again:
                    if again.status_code == 200:
                        break
                await asyncio.sleep(0.2)
