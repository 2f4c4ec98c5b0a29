"""No-op jobs submitted → completed per second: the embedded pool, ``jobstream worker``, and
Celery (``jobstream worker --celery``), side by side in one run; and Celery alone running a
no-op task, for scale.

Every jobstream mode runs on one PostgreSQL database of the run's own (created here, dropped
after), a server on 127.0.0.1 and the ``noop`` kind of ``kinds.py``: N jobs are submitted over
HTTP (``--in-flight`` requests at a time), and the clock stops when the store counts N of them
completed (``jobstream_jobs{status="completed"}`` on ``/metrics``). Celery modes use the local
RabbitMQ and a queue of the run's own (deleted after). "Celery alone" sends N ``send_task``
calls of a task that returns at once and stops when the worker has logged N successes.

    .venv/bin/python benchmarks/celery_throughput.py --jobs 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from harness import ADMIN_URL, BENCH_DIR, SERVER_ENV, BenchServer, admin_sql, machine_info

BROKER_URL = os.environ.get("JOBSTREAM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@contextmanager
def database() -> Iterator[str]:
    """A PostgreSQL database of this run's own, dropped afterwards."""
    from sqlalchemy.engine import make_url

    from jobstream.store.sql import normalize_url

    name = f"jobstream_bench_{secrets.token_hex(5)}"
    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(normalize_url(ADMIN_URL)).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def celery_queue() -> Iterator[str]:
    from kombu import Connection

    name = f"jobstream-bench-{secrets.token_hex(5)}"
    try:
        yield name
    finally:
        with Connection(BROKER_URL) as conn, suppress(Exception):
            conn.channel().queue_delete(name)


class Process:
    """A worker subprocess with its output in a file; SIGTERM (then SIGKILL) its group."""

    def __init__(self, command: list[str], env: dict[str, str], folder: Path) -> None:
        self.log = folder / f"proc-{secrets.token_hex(3)}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTREAM_")}
        full.update(SERVER_ENV)
        full.update(env)
        full["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), full.get("PYTHONPATH", "")])
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=folder,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, marker: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def completed(server: BenchServer) -> int:
    body = httpx.get(f"{server.url}/metrics", timeout=10).text
    for line in body.splitlines():
        if line.startswith('jobstream_jobs{kind="noop",status="completed"}'):
            return int(float(line.rpartition(" ")[2]))
    return 0


async def submit_all(url: str, jobs: int, in_flight: int) -> None:
    limits = httpx.Limits(max_connections=in_flight)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        left = iter(range(jobs))

        async def lane() -> None:
            for _ in left:
                r = await client.post("/api/v1/jobs", json={"kind": "noop", "params": {}})
                r.raise_for_status()

        await asyncio.gather(*(lane() for _ in range(in_flight)))


def measure(server: BenchServer, jobs: int, in_flight: int) -> dict[str, float]:
    started = time.perf_counter()
    asyncio.run(submit_all(server.url, jobs, in_flight))
    submitted = time.perf_counter() - started
    deadline = time.monotonic() + 300
    while completed(server) < jobs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{completed(server)} of {jobs} completed\n{server.log_tail()}")
        time.sleep(0.02)
    took = time.perf_counter() - started
    return {"jobs_per_s": jobs / took, "seconds": took, "submit_s": submitted}


def jobstream_mode(
    mode: str, store: str, queue: str, jobs: int, in_flight: int, concurrency: int
) -> dict[str, float]:
    env = {"JOBSTREAM_STORE_URL": store}
    workers = concurrency if mode == "embedded" else 0
    if mode.startswith("celery"):
        env |= {"JOBSTREAM_CELERY_BROKER_URL": BROKER_URL, "JOBSTREAM_CELERY_QUEUE": queue}
    folder = Path(tempfile.mkdtemp(prefix="jobstream-bench-workers-"))
    worker: Process | None = None
    with BenchServer("jobstream", env=env, workers=workers) as server:
        try:
            if mode == "worker":
                command = [sys.executable, "-m", "jobstream", "worker", "--data-dir", str(folder)]
                worker = Process([*command, "--concurrency", str(concurrency)], env, folder)
                worker.wait_for("running")
            elif mode.startswith("celery"):
                pool = mode.partition("-")[2]
                command = [sys.executable, "-m", "jobstream", "worker", "--celery"]
                command += ["--data-dir", str(folder), "--pool", pool, "--log-level", "warning"]
                worker = Process([*command, "--concurrency", str(concurrency)], env, folder)
                time.sleep(0.5)
                _wait_consumer(queue)
            return measure(server, jobs, in_flight)
        finally:
            if worker is not None:
                worker.stop()
            shutil.rmtree(folder, ignore_errors=True)


def _wait_consumer(queue: str, timeout: float = 60) -> None:
    """Until a consumer listens on ``queue`` (the Celery worker is ready)."""
    from kombu import Connection

    deadline = time.monotonic() + timeout
    with Connection(BROKER_URL) as conn:
        while time.monotonic() < deadline:
            with suppress(Exception):
                ok = conn.channel().queue_declare(queue, passive=True)
                if ok.consumer_count > 0:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"no Celery worker consumes {queue}")


CELERY_ALONE = """
import os
from celery import Celery
app = Celery("alone", broker=os.environ["BENCH_BROKER"])
app.conf.update(task_default_queue=os.environ["BENCH_QUEUE"], task_ignore_result=True,
                worker_prefetch_multiplier=1, task_acks_late=True,
                broker_connection_retry_on_startup=True)

@app.task(name="noop")
def noop(job_id):
    return None
"""


def celery_alone(queue: str, jobs: int, pool: str, concurrency: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="jobstream-bench-celery-"))
    (folder / "alone.py").write_text(CELERY_ALONE)
    env = {"BENCH_BROKER": BROKER_URL, "BENCH_QUEUE": queue, "PYTHONPATH": str(folder)}
    command = [sys.executable, "-m", "celery", "-A", "alone", "worker", "--pool", pool]
    command += ["--concurrency", str(concurrency), "--loglevel", "INFO"]
    command += ["--without-gossip", "--without-mingle"]
    worker = Process(command, env, folder)
    try:
        worker.wait_for(" ready.")
        sys.path.insert(0, str(folder))
        os.environ.update({"BENCH_BROKER": BROKER_URL, "BENCH_QUEUE": queue})
        import alone  # type: ignore[import-not-found]

        started = time.perf_counter()
        for _ in range(jobs):
            alone.app.send_task("noop", args=[secrets.token_hex(8)])
        deadline = time.monotonic() + 300
        while worker.text().count("succeeded in") < jobs:
            if time.monotonic() > deadline:
                raise TimeoutError("Celery alone did not finish")
            time.sleep(0.02)
        took = time.perf_counter() - started
        alone.app.pool.force_close_all()
        return {"jobs_per_s": jobs / took, "seconds": took, "submit_s": 0.0}
    finally:
        worker.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=8, help="submit requests at a time")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs run at once")
    parser.add_argument(
        "--modes",
        default="embedded,worker,celery-threads,celery-prefork,celery-alone",
        help="comma-separated: embedded, worker, celery-threads, celery-prefork, celery-solo, "
        "celery-alone",
    )
    args = parser.parse_args()
    info = machine_info()
    machine = f"{info['cpu']} · {info['nproc']} cores · Python {info['python']}"
    print(f"# {machine} · {args.jobs} no-op jobs, {args.concurrency} at once")
    print(f"{'mode':<16} {'jobs/s':>8} {'seconds':>8} {'submit s':>9}")
    with database() as store:
        for mode in args.modes.split(","):
            with celery_queue() as queue:
                if mode == "celery-alone":
                    row: dict[str, Any] = celery_alone(
                        queue, args.jobs, "threads", args.concurrency
                    )
                else:
                    row = jobstream_mode(
                        mode, store, queue, args.jobs, args.in_flight, args.concurrency
                    )
            rate, seconds, submit = row["jobs_per_s"], row["seconds"], row["submit_s"]
            print(f"{mode:<16} {rate:>8.1f} {seconds:>8.2f} {submit:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
