"""The store under many jobs: reports absorbed and stored per second by one process running
``--jobs`` (1,000) jobs that each report ``--rate`` (10) times a second, on SQLite and on
PostgreSQL, beside a naive one-transaction-per-report writer on the same database.

Each run is a child process of its own, built the way ``jobstream serve`` builds its parts
(``build_runtime``: the SQL store, the memory bus, the embedded ``WorkerPool`` with one slot per
job, the job log and metrics observers), without the HTTP server: nothing reads streams here.
The jobs are submitted through ``JobService.submit`` and claimed by the pool; every job's handler
waits for one start signal, then reports on an absolute schedule for ``--seconds`` seconds
through its ``JobContext``: ``ctx.progress(...)`` (unthrottled: ``progress_interval=0``) and,
every ``--log-every``-th report, ``ctx.log(...)`` instead. A job's reports are spread evenly over
the interval (each job starts at its own phase). Its status changes are the ones every job has:
``queued`` and ``running`` (status changes) and ``completed`` (the terminal event).

Modes: ``jobstream`` (the pool's own ``EventWriter``: group commit) and ``naive`` (the same jobs,
reporter and store, but every report stored in a transaction of its own through
``JobStore.append_many`` as soon as it is made, in order per job; the pool's writer replaced).

Measured, between the start signal and the end of the schedule (the window): reports offered
(jobs x rate), made (what the handlers managed: fewer when the loop, which also runs them, is
saturated), absorbed (reports made in the window and stored, per second up to when the last of
them was stored), rows and ``append_many`` transactions per second (from each transaction's plan:
job rows updated, events inserted, PostgreSQL's position counter row), report-to-stored latency
(an event's time to when its transaction's outcome is published; every 8th event), and CPU (this
process; ``other``: the rest of the machine, PostgreSQL's backends included; ``pg``: the
PostgreSQL server's processes alone, every database's).

Then, from the store (``events_after`` per job, as a reader resuming from seq 0 sees it): every
job's seqs gap-free from 1, its two status changes and its terminal event and every log line it
made present, its progress never going backwards and its last report present, and the stored
snapshot completed at its last seq. Any of those wrong makes the run fail (exit 1).

    .venv/bin/python benchmarks/store_load.py --store both --wait-quiet 120
    .venv/bin/python benchmarks/store_load.py --store sqlite --rate 30 --mode jobstream
    .venv/bin/python benchmarks/store_load.py --store postgres --profile /tmp/prof

PostgreSQL: a database of the run's own on ``JOBSTREAM_TEST_POSTGRES_URL`` (default the local
server), created before each run and dropped after. SQLite: a file in a temporary folder
(``TMPDIR``; ``/dev/shm`` for tmpfs).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness import ADMIN_URL, admin_sql, cpu_busy_seconds, machine_info, wait_until_quiet

MAX_BURST = 50
"""At most this many overdue reports of a job back to back; further behind, its schedule
restarts from now (reports skipped: made < offered)."""
LATENCY_EVERY = 8
DRAIN_LIMIT = 20.0
"""Seconds after the window to wait for the backlog to be stored (the naive writer's can be
long); past it the run reports what was stored and skips the checks."""


# --- the job and what it made ------------------------------------------------------------


class LoadParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(default=10.0, gt=0)
    seconds: float = Field(default=10.0, gt=0)
    log_every: int = Field(default=10, ge=1)
    phase: float = Field(default=0.0, ge=0, lt=1)


class Tally:
    """What the handlers made, for the checks (this process only)."""

    def __init__(self) -> None:
        self.start = asyncio.Event()
        self.t0 = 0.0
        self.made = 0
        self.made_in_window = 0
        self.window_end = 0.0
        self.last_progress: dict[str, int] = {}
        self.logs: dict[str, list[int]] = {}


TALLY: Tally | None = None


async def load(ctx: Any, params: LoadParams) -> dict[str, int]:
    """Report ``rate`` times a second for ``seconds`` on an absolute schedule; every
    ``log_every``-th report is a log line, the others progress."""
    tally = TALLY
    assert tally is not None
    await tally.start.wait()
    loop = asyncio.get_running_loop()
    interval = 1.0 / params.rate
    count = max(1, round(params.seconds * params.rate))
    logs = tally.logs.setdefault(ctx.job_id, [])
    due = tally.t0 + params.phase * interval
    i = 0
    while i < count:
        burst = 0
        while i < count and burst < MAX_BURST and loop.time() >= due:
            i += 1
            burst += 1
            due += interval
            if i % params.log_every == 0:
                ctx.log(f"line {i}")
                logs.append(i)
            else:
                ctx.progress(100.0 * i / count, message=f"report {i}")
                tally.last_progress[ctx.job_id] = i
            tally.made += 1
        now = loop.time()
        if due < now - MAX_BURST * interval:
            due = now
        if i < count:
            await asyncio.sleep(max(due - now, 0.0))
    return {"reports": i}


# --- the naive writer ----------------------------------------------------------------------


def naive_writer(store: Any, bus: Any, worker_id: str) -> Any:
    """An ``EventWriter`` that stores every report in a transaction of its own, at once."""
    from jobstream.worker.reporter import EventWriter, JobReporter

    class NaiveWriter(EventWriter):
        def __init__(self) -> None:
            super().__init__(store, bus, worker_id)
            self._chains: dict[JobReporter, asyncio.Future[None]] = {}

        def mark(self, reporter: JobReporter) -> None:
            batch = reporter.take()  # one event: taken at each report
            before = self._chains.get(reporter)
            self._idle.clear()
            self._chains[reporter] = asyncio.ensure_future(self._one(reporter, batch, before))

        async def _one(self, reporter: Any, batch: Any, before: Any) -> None:
            if before is not None:
                await before
            (ok,) = await self._store.append_many([batch])
            self.transactions += 1
            if ok is True:
                self._bus.publish_soon(list(batch.events))
                reporter.stored(batch)
            else:
                reporter.refused()
            if self._chains.get(reporter) is asyncio.current_task():
                del self._chains[reporter]
                if not self._chains:
                    self._idle.set()

    return NaiveWriter()


# --- one run (the child process) ---------------------------------------------------------


class Counters:
    def __init__(self) -> None:
        self.transactions = 0
        self.thread_transactions = 0
        self.job_rows = 0
        self.event_rows = 0
        self.trims = 0
        self.stored_reports = 0
        self.stored_in_window = 0
        self.last_window_stored = 0.0
        self.latencies_us: list[int] = []
        self.seen = 0


def instrument(counters: Counters, tally: Tally, bus: Any, postgres: bool) -> None:
    """Count what each ``append_many`` transaction writes (its plan) and time what is
    published (an event is published once its transaction committed)."""
    from jobstream.store import batch as batch_module

    original_plan = batch_module.plan

    def counted_plan(*args: Any, **kwargs: Any) -> Any:
        todo = original_plan(*args, **kwargs)
        counters.transactions += 1
        counters.job_rows += len(todo.rows) + len(todo.running)
        counters.event_rows += len(todo.events)
        counters.trims += len(todo.trims)
        return todo

    batch_module.plan = counted_plan

    on_thread = batch_module.SQLiteBatchWriter.append_many

    async def counted_on_thread(self: Any, batches: Any) -> Any:
        counters.thread_transactions += 1
        return await on_thread(self, batches)

    batch_module.SQLiteBatchWriter.append_many = counted_on_thread  # type: ignore[method-assign]

    publish_soon = bus.publish_soon
    window_start_us = 0

    def timed_publish(events: Sequence[Any]) -> None:
        nonlocal window_start_us
        if tally.t0 and not window_start_us:
            window_start_us = time.time_ns() // 1000 - int((time.monotonic() - tally.t0) * 1e6)
        now_us = time.time_ns() // 1000
        in_window = 0
        for event in events:
            if event.type.value in ("progress", "log"):
                counters.stored_reports += 1
                if window_start_us and event.ts_us >= window_start_us:
                    in_window += 1
                    counters.seen += 1
                    if counters.seen % LATENCY_EVERY == 0:
                        counters.latencies_us.append(now_us - event.ts_us)
        if in_window:
            counters.stored_in_window += in_window
            counters.last_window_stored = time.monotonic()
        publish_soon(events)

    bus.publish_soon = timed_publish


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by the machine's PostgreSQL processes (every database's: other
    work on the server counts too)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] in ("postgres", "postmaster") and proc.info["cpu_times"]:
            total += proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return total


def percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def verify(store: Any, tally: Tally, job_ids: list[str]) -> dict[str, int]:
    """What a reader sees, job by job, against what the handlers made."""
    bad = dict.fromkeys(
        ("gaps", "status_missing", "logs_missing", "progress_backwards", "last_missing"), 0
    )
    bad["snapshot_wrong"] = 0
    positions: list[int] = []
    progress_events = 0
    for job_id in job_ids:
        events = await store.events_after(job_id, 0, limit=100_000) or []
        if [e.seq for e in events] != list(range(1, len(events) + 1)):
            bad["gaps"] += 1
        statuses = [e.data["new_status"] for e in events if e.type.value == "status_change"]
        if statuses != ["queued", "running"] or not events or events[-1].type.value != "completed":
            bad["status_missing"] += 1
        logs = [int(e.data["message"].split()[1]) for e in events if e.type.value == "log"]
        if logs != tally.logs.get(job_id, []):
            bad["logs_missing"] += 1
        progress = [e for e in events if e.type.value == "progress"]
        progress_events += len(progress)
        values = [float(e.data["progress"]) for e in progress]
        if any(b < a for a, b in itertools.pairwise(values)):
            bad["progress_backwards"] += 1
        last = tally.last_progress.get(job_id)
        if last is not None and (not progress or progress[-1].data["message"] != f"report {last}"):
            bad["last_missing"] += 1
        job = await store.get(job_id)
        if job is None or job.status.value != "completed" or job.seq != len(events):
            bad["snapshot_wrong"] += 1
        positions.extend(e.pos for e in events if e.pos is not None)
    bad["positions_repeated"] = len(positions) - len(set(positions))
    bad["progress_events_stored"] = progress_events
    return bad


async def run_child(args: argparse.Namespace) -> dict[str, Any]:
    global TALLY
    from jobstream.server.auth import Principal
    from jobstream.server.runtime import build_runtime
    from jobstream.settings import Settings
    from jobstream.worker.registry import Registry

    logging.basicConfig(level=logging.WARNING)
    TALLY = tally = Tally()
    registry = Registry()
    registry.register("load", params=LoadParams, progress_interval=0.0, on_interrupt="fail")(load)
    planned = max(1, round(args.seconds * args.rate))
    data_dir = Path(args.data_dir)
    settings = Settings(
        data_dir=data_dir,
        store_url=args.url,
        workers=args.jobs,
        demo_jobs=False,
        submit_rate_per_minute=0,
        max_events_per_job=max(1000, planned + 16),
        auth="none",
    )
    runtime = build_runtime(settings, registry=registry)
    assert runtime.pool is not None
    if args.mode == "naive":
        runtime.pool.writer = naive_writer(runtime.store, runtime.bus, runtime.pool.worker_id)
    counters = Counters()
    instrument(counters, tally, runtime.bus, args.url.startswith("postgres"))
    principal = Principal(sub="bench")
    job_ids: list[str] = []
    result: dict[str, Any] = {"store": args.store, "mode": args.mode, "jobs": args.jobs}
    async with runtime.running():
        for n in range(args.jobs):
            params = {
                "rate": args.rate,
                "seconds": args.seconds,
                "log_every": args.log_every,
                "phase": n / args.jobs,
            }
            job = await runtime.jobs.submit(principal, "load", params)
            job_ids.append(job.id)
        deadline = time.monotonic() + 120
        while runtime.pool.active < args.jobs and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if runtime.pool.active < args.jobs:
            raise RuntimeError(f"only {runtime.pool.active} of {args.jobs} jobs running")
        await asyncio.sleep(0.5)  # the claims' last commits settle
        base = {k: v for k, v in vars(counters).items() if isinstance(v, int)}
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        busy0 = cpu_busy_seconds()
        pg0 = postgres_cpu_seconds()
        loop = asyncio.get_running_loop()
        print(json.dumps({"kind": "started", "pid": os.getpid()}), flush=True)
        tally.t0 = loop.time()
        wall0 = time.monotonic()
        tally.start.set()
        await asyncio.sleep(args.seconds)
        tally.made_in_window = tally.made
        window = time.monotonic() - wall0
        at_end = {k: v for k, v in vars(counters).items() if isinstance(v, int)}
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        busy1 = cpu_busy_seconds()
        pg1 = postgres_cpu_seconds()
        # The rest of the schedule (a late job's last reports) and the backlog.
        drain_deadline = time.monotonic() + DRAIN_LIMIT
        while runtime.pool.active and time.monotonic() < drain_deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        drained = runtime.pool.active == 0
        stored_window = counters.stored_in_window
        span = max(counters.last_window_stored - wall0, window)
        own_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        delta = {k: at_end[k] - base[k] for k in at_end}
        result.update(
            {
                "rate_per_job": args.rate,
                "seconds": round(window, 2),
                "offered_per_s": round(args.jobs * args.rate),
                "made_per_s": round(tally.made_in_window / window),
                "made": tally.made,
                "absorbed_per_s": round(stored_window / span) if drained else None,
                "stored_in_window_per_s": round(delta["stored_in_window"] / window),
                "drain_s": round(span - window, 3) if drained else None,
                "transactions_per_s": round(delta["transactions"] / window),
                "thread_transactions": delta["thread_transactions"],
                "job_rows_per_s": round(delta["job_rows"] / window),
                "event_rows_per_s": round(delta["event_rows"] / window),
                "rows_per_s": round(
                    (
                        delta["job_rows"]
                        + delta["event_rows"]
                        + (delta["transactions"] if args.url.startswith("postgres") else 0)
                    )
                    / window
                ),
                "events_per_transaction": round(
                    delta["event_rows"] / max(delta["transactions"], 1), 1
                ),
                "p50_ms": percentile(counters.latencies_us, 0.5),
                "p99_ms": percentile(counters.latencies_us, 0.99),
                "max_ms": percentile(counters.latencies_us, 1.0),
                "cpu": round(own_cpu / window, 2),
                "other_cpu": round(max(busy1 - busy0 - own_cpu, 0.0) / window, 2),
                "postgres_cpu": round((pg1 - pg0) / window, 2),
                "drained": drained,
            }
        )
        if drained:
            await runtime.pool.writer.stop()
            result["check"] = await verify(runtime.store, tally, job_ids)
        else:
            result["check"] = None
            print(json.dumps({"kind": "result", **result}), flush=True)
            os._exit(0)  # the backlog would take minutes: stop here, unchecked
    return result


# --- the orchestrator ----------------------------------------------------------------------


@contextmanager
def database(store: str, folder: Path, synchronous_commit: str | None = None) -> Iterator[str]:
    """A SQLite file in ``folder``, or a PostgreSQL database of this run's own (dropped after;
    ``synchronous_commit`` set on it when given)."""
    if store == "sqlite":
        yield f"sqlite:///{folder / 'jobstream.db'}"
        return
    from sqlalchemy.engine import make_url

    from jobstream.store.sql import normalize_url

    name = f"jobstream_bench_{secrets.token_hex(5)}"
    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    if synchronous_commit:
        setting = f"synchronous_commit = {synchronous_commit}"
        asyncio.run(admin_sql(f'ALTER DATABASE "{name}" SET {setting}'))
    try:
        url = make_url(normalize_url(ADMIN_URL)).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run(store: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    quiet = wait_until_quiet(args.wait_quiet) if args.wait_quiet else {}
    folder = Path(tempfile.mkdtemp(prefix="jobstream-store-load-"))
    profiler: subprocess.Popen[bytes] | None = None
    try:
        with database(store, folder, args.pg_synchronous_commit) as url:
            cmd = [sys.executable, __file__, "--child", "--store", store, "--mode", mode]
            cmd += ["--url", url, "--data-dir", str(folder / "data"), "--jobs", str(args.jobs)]
            cmd += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
            cmd += ["--log-every", str(args.log_every)]
            env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTREAM_")}
            if args.src:
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (args.src, env.get("PYTHONPATH")) if p
                )
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
            assert child.stdout is not None
            result: dict[str, Any] = {}
            for line in child.stdout:
                message = json.loads(line)
                if message["kind"] == "started" and args.profile:
                    profiler = start_profiler(message["pid"], args, store, mode)
                elif message["kind"] == "result":
                    result = message
            if child.wait() != 0 or not result:
                raise RuntimeError(f"the {store}/{mode} run failed (exit {child.returncode})")
            if profiler is not None:
                profiler.wait(timeout=args.seconds + 30)
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.terminate()
        shutil.rmtree(folder, ignore_errors=True)
    result.pop("kind", None)
    result.update(quiet)
    return result


def start_profiler(
    pid: int, args: argparse.Namespace, store: str, mode: str
) -> subprocess.Popen[bytes]:
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"store-{store}-{mode}-{args.jobs}x{args.rate:g}.txt"
    py_spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(args.seconds))]
    cmd += ["--rate", "250", "--format", "raw", "--nonblocking", "--output", str(target)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


COLUMNS = (
    ("store", "store"),
    ("mode", "mode"),
    ("offered/s", "offered_per_s"),
    ("made/s", "made_per_s"),
    ("absorbed/s", "absorbed_per_s"),
    ("stored/s (window)", "stored_in_window_per_s"),
    ("tx/s", "transactions_per_s"),
    ("on thread", "thread_transactions"),
    ("rows/s", "rows_per_s"),
    ("events/tx", "events_per_transaction"),
    ("p50 ms", "p50_ms"),
    ("p99 ms", "p99_ms"),
    ("cpu", "cpu"),
    ("other cpu", "other_cpu"),
    ("pg cpu", "postgres_cpu"),
    ("lost", "lost"),
)


def lost(result: dict[str, Any]) -> str:
    check = result.get("check")
    if check is None:
        return "unchecked (backlog)"
    wrong = {k: v for k, v in check.items() if v and k != "progress_events_stored"}
    return "0" if not wrong else ", ".join(f"{k} {v}" for k, v in wrong.items())


def table(results: list[dict[str, Any]]) -> str:
    rows = [[name for name, _ in COLUMNS]]
    for result in results:
        cells = []
        for _, key in COLUMNS:
            value = lost(result) if key == "lost" else result.get(key)
            cells.append(
                "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
            )
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--mode", choices=("jobstream", "naive", "both"), default="both")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="reports per second per job")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the run's process (raw stacks)")
    parser.add_argument("--src", help="a jobstream src/ folder to run instead of the installed one")
    parser.add_argument(
        "--pg-synchronous-commit",
        choices=("on", "off"),
        help="set on the run's PostgreSQL database (off: a commit does not wait for the disk)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        result = asyncio.run(run_child(args))
        print(json.dumps({"kind": "result", **result}), flush=True)
        return
    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    modes = ("jobstream", "naive") if args.mode == "both" else (args.mode,)
    print(json.dumps(machine_info()))
    results = []
    for _ in range(args.repeat):
        for store in stores:
            for mode in modes:
                result = run(store, mode, args)
                results.append(result)
                print(
                    json.dumps(result) if args.json else table([result]).splitlines()[1], flush=True
                )
    print()
    print(table(results))
    if any(lost(r) not in ("0", "unchecked (backlog)") for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
