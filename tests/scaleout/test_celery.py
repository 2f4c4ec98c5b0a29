"""Jobs on Celery, against real processes: RabbitMQ as the broker, Celery workers started here
(``jobstream worker --celery``, and the ``celery`` command on an application's own app), real
``jobstream serve`` instances on a PostgreSQL database of the test's own, and a Celery queue of
the test's own.

Without a network bus a worker process's events reach the instances through the store: a
watcher here polls the job's snapshots while it runs, and every history is checked against the
stored log, read from each instance (gap-free, identical, and agreeing with every snapshot).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from celeryproc import BROKER_URL, CeleryWorker, celery_queue
from serverproc import ROOT, ServerProcess, bearer
from ssehelp import collect

LEASE = "4"
TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def queue() -> Iterator[str]:
    with celery_queue() as name:
        yield name


@pytest.fixture
def env(database: str, queue: str) -> dict[str, str]:
    return {
        "JOBSTREAM_STORE_URL": database,
        "JOBSTREAM_LEASE_SECONDS": LEASE,
        "JOBSTREAM_CELERY_BROKER_URL": BROKER_URL,
        "JOBSTREAM_CELERY_QUEUE": queue,
    }


@pytest.fixture
def celery_workers(tmp_path: Path, queue: str) -> Iterator[Callable[..., CeleryWorker]]:
    """Celery workers, all killed before the test's queue is deleted (a live consumer would
    declare it again)."""
    started: list[CeleryWorker] = []

    def make(env: dict[str, str], *args: str, command: list[str] | None = None) -> CeleryWorker:
        worker = CeleryWorker(tmp_path / "shared", env, *args, command=command)
        started.append(worker)
        return worker.start()

    yield make
    for worker in started:
        worker.kill()


def instances(
    make_server: Callable[..., ServerProcess], env: dict[str, str], tmp_path: Path, n: int = 2
) -> list[ServerProcess]:
    return [make_server(env, data_dir=tmp_path / "shared").start() for _ in range(n)]


async def until(
    client: httpx.AsyncClient,
    job_id: str,
    check: Callable[[dict[str, Any]], bool],
    seen: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Poll the job's snapshot until ``check`` holds; every snapshot goes into ``seen``."""
    async with asyncio.timeout(60):
        while True:
            job: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            if seen is not None:
                seen.append(job)
            if check(job):
                return job
            await asyncio.sleep(0.05)


async def stored_log(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    return [e.json for e in await collect(client, f"/api/v1/jobs/{job_id}/events?last_event_id=0")]


def assert_history(log: list[dict[str, Any]], seen: list[dict[str, Any]]) -> None:
    """A gap-free log from seq 1 to its terminal event, and every snapshot a watcher saw is
    the log's state at that snapshot's seq."""
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert log[-1]["type"] in TERMINAL
    status: dict[int, str] = {}
    current = "queued"
    for event in log:
        if event["type"] == "status_change":
            current = event["data"]["new_status"]
        elif event["type"] in TERMINAL:
            current = event["type"]
        status[event["seq"]] = current
    for snapshot in seen:
        assert status[snapshot["seq"]] == snapshot["status"], snapshot


def runs(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log if e["type"] == "status_change" and e["data"]["new_status"] == "running"]


async def test_a_pdf_job_runs_on_celery_step_by_step_and_downloads_from_the_other_instance(
    make_server: Callable[..., ServerProcess],
    celery_workers: Callable[..., CeleryWorker],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    first, second = instances(make_server, env, tmp_path)
    worker = celery_workers(env, "--concurrency", "2")  # prefork
    h = bearer("ops")
    async with (
        httpx.AsyncClient(base_url=first.url, headers=h, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, headers=h, timeout=30) as b,
    ):
        job = (await a.post("/api/v1/jobs", json={"kind": "pdf", "params": {"pages": 3}})).json()
        seen: list[dict[str, Any]] = []
        done = await until(b, job["id"], lambda j: j["status"] in TERMINAL, seen)
        assert done["status"] == "completed" and done["result"]["page_count"] == 3
        assert (await b.get("/readyz")).json() == {"status": "ready"}
        pdf = await b.get(f"/api/v1/jobs/{job['id']}/result")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        log, again = await stored_log(a, job["id"]), await stored_log(b, job["id"])
    assert log == again
    assert_history(log, seen)
    assert len(runs(log)) == 1 and runs(log)[0]["data"]["worker"].startswith("w-")
    steps = [e["data"]["current_step"] for e in log if e["type"] == "progress"]
    assert steps == sorted(steps) and len(set(steps)) > 2  # step by step
    assert f"jobstream.run[{job['id']}]" in worker.log()
    assert "jobstream" in worker.log()


@pytest.mark.parametrize("pool", ["threads", "solo", "prefork"])
async def test_sync_and_async_handlers_run_on_each_supported_pool(
    make_server: Callable[..., ServerProcess],
    celery_workers: Callable[..., CeleryWorker],
    env: dict[str, str],
    tmp_path: Path,
    pool: str,
) -> None:
    (server,) = instances(make_server, env, tmp_path, 1)
    celery_workers(env, "--pool", pool, "--concurrency", "2")
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("ops"), timeout=30) as c:
        sync = (
            await c.post(
                "/api/v1/jobs",
                json={"kind": "stepped_sync", "params": {"steps": 3, "step_seconds": 0.05}},
            )
        ).json()
        flood = (
            await c.post(
                "/api/v1/jobs", json={"kind": "flood", "params": {"count": 50, "interval_ms": 2}}
            )
        ).json()
        for job, result in ((sync, {"steps": 3}), (flood, {"count": 50})):
            done = await until(c, job["id"], lambda j: j["status"] in TERMINAL)
            assert done["status"] == "completed" and done["result"] == result
            log = await stored_log(c, job["id"])
            assert_history(log, [done])
        logs = [e for e in await stored_log(c, sync["id"]) if e["type"] == "log"]
        assert [e["data"]["message"] for e in logs] == ["step 1", "step 2", "step 3"]


def test_gevent_and_eventlet_pools_are_refused_with_the_reason(tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "jobstream", "worker", "--celery", "--pool", "gevent"],
        env={
            "PATH": "/usr/bin:/bin",
            "JOBSTREAM_CELERY_BROKER_URL": BROKER_URL,
            "PYTHONPATH": str(ROOT / "src"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "gevent" in out.stderr and "prefork, threads, solo" in out.stderr


async def test_cancel_revokes_a_queued_job_and_reaches_a_running_one_within_a_second(
    make_server: Callable[..., ServerProcess],
    celery_workers: Callable[..., CeleryWorker],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    env = {**env, "JOBSTREAM_LEASE_SECONDS": "30"}  # renewals (which also carry cancels) 10 s apart
    first, second = instances(make_server, env, tmp_path)
    worker = celery_workers(env, "--pool", "prefork", "--concurrency", "1")
    h = bearer("ops")
    async with (
        httpx.AsyncClient(base_url=first.url, headers=h, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, headers=h, timeout=30) as b,
    ):
        busy = (await a.post("/api/v1/jobs", json={"kind": "forever", "params": {}})).json()
        await until(b, busy["id"], lambda j: j["status"] == "running" and j["seq"] > 3)
        # The only worker slot is taken: this one waits in the broker.
        waiting = (
            await a.post("/api/v1/jobs", json={"kind": "flood", "params": {"count": 5}})
        ).json()
        cancelled = (await b.post(f"/api/v1/jobs/{waiting['id']}/cancel")).json()
        assert cancelled["status"] == "cancelled"
        await asyncio.sleep(0.5)  # the revoke's broadcast reaches the worker
        asked = time.monotonic()
        assert (await b.post(f"/api/v1/jobs/{busy['id']}/cancel")).status_code == 202
        seen: list[dict[str, Any]] = []
        stopped = await until(a, busy["id"], lambda j: j["status"] in TERMINAL, seen)
        took = time.monotonic() - asked
        assert stopped["status"] == "cancelled"
        assert took < 1.2, f"the running job saw the cancel after {took:.2f} s"
        # The worker is free and takes the revoked task next: Celery discards it.
        async with asyncio.timeout(20):
            while f"revoked task: jobstream.run[{waiting['id']}]" not in worker.log():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        waiting_log = await stored_log(a, waiting["id"])
        busy_log = await stored_log(b, busy["id"])
    assert [e["type"] for e in waiting_log] == ["status_change", "cancelled"]  # never started
    assert_history(busy_log, seen)


async def test_a_sigkilled_celery_worker_is_announced_stalled_then_requeued_and_runs_again_once(
    make_server: Callable[..., ServerProcess],
    celery_workers: Callable[..., CeleryWorker],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    first, second = instances(make_server, env, tmp_path)
    doomed = celery_workers(env, "--concurrency", "1")
    h = bearer("ops")
    async with (
        httpx.AsyncClient(base_url=first.url, headers=h, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, headers=h, timeout=30) as b,
    ):
        params = {"count": 200, "interval_ms": 20}
        job = (await a.post("/api/v1/jobs", json={"kind": "flood", "params": params})).json()
        seen: list[dict[str, Any]] = []
        await until(b, job["id"], lambda j: j["status"] == "running" and j["seq"] > 5, seen)
        doomed.kill()  # SIGKILL, the pool's child with it
        killed = time.monotonic()
        await until(b, job["id"], lambda j: j["state"] == "stalled", seen)
        stalled_after = time.monotonic() - killed
        requeued = await until(a, job["id"], lambda j: j["status"] == "queued", seen)
        recovered_after = time.monotonic() - killed
        assert 1.0 < stalled_after < recovered_after < 20  # lease 4 s (20: a busy machine)
        # The broker still holds the unacknowledged delivery, and the recovering instance sent
        # the job again: a new worker gets both, and the job runs once more, once.
        revived = celery_workers(env, "--concurrency", "2")
        done = await until(b, job["id"], lambda j: j["status"] in TERMINAL, seen)
        assert done["status"] == "completed"
        received = f"Task jobstream.run[{job['id']}] received"
        async with asyncio.timeout(20):  # both deliveries reach the new worker
            while revived.log().count(received) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a second run, were there one, would have written by now
        assert revived.log().count(received) == 2
        log, again = await stored_log(a, job["id"]), await stored_log(b, job["id"])
    assert log == again
    assert_history(log, seen)
    assert len(runs(log)) == 2 and runs(log)[0]["data"]["worker"] != runs(log)[1]["data"]["worker"]
    after = log[requeued["seq"] :]
    assert after[0]["type"] == "status_change" and after[0]["data"]["new_status"] == "running"
    stall = [e for e in log if e["type"] == "progress" and e["data"]["state"] == "stalled"]
    warning = [e for e in log if e["type"] == "log" and e["data"]["level"] == "warning"]
    assert len(stall) == 1 and len(warning) == 1
    back = log[requeued["seq"] - 1]
    assert back["data"]["new_status"] == "queued" and back["data"]["reason"]
    progress = [e["data"]["progress"] for e in after if e["type"] == "progress"]
    assert progress == sorted(progress)  # one run, not two interleaved


async def test_a_frozen_worker_is_fenced_out_and_the_job_sent_again_runs_elsewhere_once(
    make_server: Callable[..., ServerProcess],
    celery_workers: Callable[..., CeleryWorker],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """SIGSTOP holds the first worker's broker connection open, so its delivery is never given
    back: the job runs again only because the instance that recovered it sent it again. When
    the first worker wakes, its lease is gone and none of its writes land."""
    (server,) = instances(make_server, env, tmp_path, 1)
    frozen = celery_workers(env, "--pool", "threads", "--concurrency", "1")
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("ops"), timeout=30) as c:
        params = {"count": 150, "interval_ms": 20}
        job = (await c.post("/api/v1/jobs", json={"kind": "flood", "params": params})).json()
        seen: list[dict[str, Any]] = []
        await until(c, job["id"], lambda j: j["status"] == "running" and j["seq"] > 5, seen)
        assert frozen.proc is not None
        os.killpg(frozen.proc.pid, signal.SIGSTOP)
        try:
            requeued = await until(c, job["id"], lambda j: j["status"] == "queued", seen)
            second = celery_workers(env, "--pool", "threads", "--concurrency", "1")
            await until(c, job["id"], lambda j: j["status"] == "running", seen)
        finally:
            os.killpg(frozen.proc.pid, signal.SIGCONT)
        done = await until(c, job["id"], lambda j: j["status"] in TERMINAL, seen)
        assert done["status"] == "completed"
        await asyncio.sleep(2.0)  # the woken worker has renewed (and lost) its lease by now
        log = await stored_log(c, job["id"])
    assert f"Task jobstream.run[{job['id']}] received" in second.log()
    assert log[0]["type"] != "snapshot", frozen.log()[-3000:] + second.log()[-3000:]
    assert_history(log, seen)
    assert len(runs(log)) == 2 and log[-1]["seq"] == done["seq"]
    after = log[requeued["seq"] :]
    progress = [e["data"]["progress"] for e in after if e["type"] == "progress"]
    assert progress == sorted(progress)  # the woken run wrote nothing into the new one


@pytest.fixture
def user_app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("JOBSTREAM_CELERY_BROKER_URL", env["JOBSTREAM_CELERY_BROKER_URL"])
    monkeypatch.setenv("JOBSTREAM_CELERY_QUEUE", env["JOBSTREAM_CELERY_QUEUE"])
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    sys.modules.pop("celeryapp", None)
    module = importlib.import_module("celeryapp")
    yield module
    if module.app.backend.result_consumer._connection is not None:
        module.app.backend.result_consumer.stop()
    module.app.pool.force_close_all()
    module.app.close()
    sys.modules.pop("celeryapp", None)


async def test_a_task_of_the_users_own_celery_app_reports_as_a_job_and_ends_before_celery_says_so(
    make_server: Callable[..., ServerProcess],
    celery_workers: Callable[..., CeleryWorker],
    env: dict[str, str],
    tmp_path: Path,
    user_app: Any,
) -> None:
    (server,) = instances(make_server, env, tmp_path, 1)
    celery_workers(
        env,
        command=[
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celeryapp",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "2",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
    )
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("celery"), timeout=30) as c:
        for images in (5, 10, 20):
            result = user_app.resize.delay(images)
            # Celery says SUCCESS only after the job's terminal event is stored.
            done = {"resized": images, "job_when_done": "completed"}
            assert await asyncio.to_thread(result.get, timeout=30) == done
            job = (await c.get(f"/api/v1/jobs/{result.id}")).json()
            assert job["status"] == "completed" and job["result"] == {"resized": images}
            fetched = (await c.get(f"/api/v1/jobs/{result.id}/result")).json()
            assert fetched["result"] == {"resized": images}
        log = await stored_log(c, result.id)
        assert_history(log, [job])
        assert job["kind"] == "celeryapp.resize" and job["params"] == {"args": [20], "kwargs": {}}
        assert any(e["type"] == "log" and e["data"]["message"] == "resized 20 images" for e in log)
        assert [e["data"]["progress"] for e in log if e["type"] == "progress"][-1] == 100

        # Celery's own retries: a warning and a re-queue each, then the next attempt, one log.
        flaky = user_app.flaky.delay(2)
        assert await asyncio.to_thread(flaky.get, timeout=30) == "fetched"
        by_hand = user_app.retried_by_hand.delay()
        assert await asyncio.to_thread(by_hand.get, timeout=30) == "done"
        for task_id, retries, reason in (
            (flaky.id, 2, "UpstreamDown"),
            (by_hand.id, 1, "TimeoutError"),
        ):
            log = await stored_log(c, task_id)
            assert_history(log, [])
            assert log[-1]["type"] == "completed"
            assert len(runs(log)) == retries + 1
            requeues = [
                e
                for e in log
                if e["type"] == "status_change" and e["data"]["new_status"] == "queued"
            ]
            assert [e["data"].get("reason") for e in requeues] == [None] + ["retry"] * retries
            warnings = [
                e["data"]["message"]
                for e in log
                if e["type"] == "log" and e["data"]["level"] == "warning"
            ]
            assert len(warnings) == retries and all(reason in w and "retr" in w for w in warnings)

    # The same app runs jobstream's kinds, submitted to the server.
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("ops"), timeout=30) as c:
        job = (
            await c.post(
                "/api/v1/jobs",
                json={"kind": "stepped_sync", "params": {"steps": 2, "step_seconds": 0}},
            )
        ).json()
        done = await until(c, job["id"], lambda j: j["status"] in TERMINAL)
        assert done["status"] == "completed"


async def test_a_broker_that_cannot_be_reached_fails_the_job_with_the_reason(
    make_server: Callable[..., ServerProcess], env: dict[str, str], tmp_path: Path
) -> None:
    broken = {**env, "JOBSTREAM_CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"}
    (server,) = instances(make_server, broken, tmp_path, 1)
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("ops"), timeout=60) as c:
        job = (await c.post("/api/v1/jobs", json={"kind": "flood", "params": {"count": 1}})).json()
        assert job["status"] == "failed" and "queued" in job["error"]
        ready = await c.get("/readyz")
        assert ready.status_code == 503 and set(ready.json()["problems"]) == {"broker"}


# -- with the Redis bus: live across instances ---------------------------------------------


@pytest.fixture
async def bus_env(env: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    from redisdb import REDIS_URL, redis_prefix

    async with redis_prefix() as prefix:
        yield {**env, "JOBSTREAM_BUS_URL": REDIS_URL, "JOBSTREAM_REDIS_PREFIX": prefix}


async def watch_live(
    client: httpx.AsyncClient, job_id: str, during: Callable[[int], Any] | None = None
) -> list[dict[str, Any]]:
    """Every event of the job as one SSE stream delivers it, from seq 1 to the end;
    ``during(n)`` is awaited after the n-th event."""
    from ssehelp import SSEReader

    received: list[dict[str, Any]] = []
    async with client.stream("GET", f"/api/v1/jobs/{job_id}/events?last_event_id=0") as r:
        reader = SSEReader(r)
        async with asyncio.timeout(90):
            while True:
                event = await reader.next()
                if event is None:
                    break
                received.append(event.json)
                if during is not None:
                    await during(len(received))
                if event.event in TERMINAL:
                    break
    return received


async def test_on_the_redis_bus_a_celery_job_streams_live_to_another_instance_without_a_gap(
    make_server: Callable[..., ServerProcess],
    celery_workers: Callable[..., CeleryWorker],
    bus_env: dict[str, str],
    tmp_path: Path,
) -> None:
    first, second = instances(make_server, bus_env, tmp_path)
    celery_workers(bus_env, "--concurrency", "2")
    h = bearer("live")
    async with (
        httpx.AsyncClient(base_url=first.url, headers=h, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, headers=h, timeout=30) as b,
    ):
        job = (await a.post("/api/v1/jobs", json={"kind": "pdf", "params": {"pages": 2}})).json()
        midway: list[dict[str, Any]] = []

        async def look(n: int) -> None:
            if n == 6:
                midway.append((await a.get(f"/api/v1/jobs/{job['id']}")).json())

        received = await watch_live(b, job["id"], look)
        log = await stored_log(a, job["id"])
        assert (await b.get(f"/api/v1/jobs/{job['id']}/result")).content.startswith(b"%PDF-")
    assert midway and midway[0]["status"] == "running"  # the stream was live, not a replay
    assert received == log  # nothing missing, nothing twice, nothing different
    assert_history(log, midway)


async def test_on_the_redis_bus_a_cancel_reaches_a_celery_job_through_the_bus(
    make_server: Callable[..., ServerProcess],
    celery_workers: Callable[..., CeleryWorker],
    bus_env: dict[str, str],
    tmp_path: Path,
) -> None:
    bus_env = {**bus_env, "JOBSTREAM_LEASE_SECONDS": "30"}  # no renewal within the second
    first, second = instances(make_server, bus_env, tmp_path)
    worker = celery_workers(bus_env, "--pool", "threads", "--concurrency", "1")
    h = bearer("live")
    async with (
        httpx.AsyncClient(base_url=first.url, headers=h, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, headers=h, timeout=30) as b,
    ):
        job = (await a.post("/api/v1/jobs", json={"kind": "forever", "params": {}})).json()
        asked: list[float] = []

        async def cancel_at(n: int) -> None:
            if n == 5:
                asked.append(time.monotonic())
                assert (await a.post(f"/api/v1/jobs/{job['id']}/cancel")).status_code == 202

        received = await watch_live(b, job["id"], cancel_at)
        took = time.monotonic() - asked[0]
        log = await stored_log(a, job["id"])
    assert received[-1]["type"] == "cancelled" and took < 1.0, f"{took:.2f} s"
    assert received == log
    assert "jobstream runtime" in worker.log()
