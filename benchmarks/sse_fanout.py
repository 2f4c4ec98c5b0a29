"""SSE fan-out: N subscribers on one job that reports progress every ``interval`` ms.

For each mode a real server is started in a subprocess (pinned to one core), one ``bench`` job
is submitted, N raw-socket SSE clients connect from a separate process (pinned to the other
core), and once every client holds its first event the job starts reporting. Each progress
message carries its publish time (``time.time_ns()`` in the handler), so the clients measure

- publish-to-receipt latency (p50/p99/max): receipt time (one ``time_ns()`` per received chunk)
  minus the publish timestamp, for every progress event on every measured connection (all
  connections unless ``--latency-every K``: every K-th connection, a systematic sample);
- "seen" latency: for every *published* report, the time until the client received it or a
  newer one. The same as the above when nothing is skipped; for the polling baseline, which
  sends only what it finds every 0.5 s, it is the staleness a user sees;
- deliveries/s: progress events received by all clients / (last receipt - first receipt);
- events lost: published x subscribers - received. jobstream may only replace progress for a
  reader that fell behind (``jobstream_coalesced_events_total`` on ``/metrics``), so its
  ``unexplained`` column (lost - coalesced) must be 0. The polling baseline sends only the state
  it sees every 0.5 s: it skips most events by design.

Modes: ``jobstream`` (the canonical ``/api/v1/jobs/{id}/events``), ``baseline`` (seed 000: a
``StreamingResponse`` re-reading the job every 0.5 s, see ``baseline_server.py``), ``queue``
(a plain FastAPI queue-per-subscriber ``StreamingResponse``; not in ``both``).

``--jobs J`` spreads the subscribers evenly over J jobs (subscriber i watches job i mod J), each
reporting every ``--interval-ms``, their schedules offset evenly over one interval. The server's
resident memory (``app_pid``, psutil) is sampled through the run: ``RSS peak``. Garbage
collection pauses during the run come from ``jobstream_gc_pause_seconds`` on ``/metrics``.

``--curve 100,1000,5000,10000`` runs those points in turn (each ``SUBS[/JOBS][:INTERVAL_MS]``;
without an interval, the one that makes subscribers x events/s the point's target rate, see
``CURVE_INTERVALS``) and prints one table, every point in each ``--mode`` (default for a curve:
``jobstream`` and the ``queue`` baseline). ``--asgi-server granian`` (or ``both``) runs the same
app under granian instead of (or beside) uvicorn.

    .venv/bin/python benchmarks/sse_fanout.py --subscribers 100 --interval-ms 1
    .venv/bin/python benchmarks/sse_fanout.py --subscribers 1000 --interval-ms 10 --json
    .venv/bin/python benchmarks/sse_fanout.py --curve 100,1000,5000,10000,10000/1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing as mp
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    ASGI_SERVERS,
    BenchServer,
    cpu_busy_seconds,
    cpu_plan,
    machine_info,
    process_cpu_seconds,
    raise_fd_limit,
    set_affinity,
    wait_until_quiet,
)

STAMP = re.compile(rb'"(1\d{18}) (\d+) ')
"""A report's publish time and number: the message (seed 000: ``progress_info``) starts so."""


@dataclass(frozen=True)
class Mode:
    name: str
    flavour: str
    path: str
    count: bytes  # one occurrence per delivered progress event that carries a timestamp
    end: bytes  # the stream's last event
    websocket: bool = False  # WebSocket frames instead of an SSE byte stream


MODES = {
    "jobstream": Mode(
        "jobstream",
        "jobstream",
        "/api/v1/jobs/{id}/events",
        b"\nevent: progress\n",
        b"\nevent: completed\n",
    ),
    "baseline": Mode(
        "baseline", "baseline", "/baseline/poll/{id}", b'"progress_info": "1', b"event: status\n"
    ),
    "queue": Mode(
        "queue", "baseline", "/baseline/queue/{id}", b"\nevent: progress\n", b"\nevent: completed\n"
    ),
    "redis": Mode(
        "redis",
        "jobstream",
        "/api/v1/jobs/{id}/events",
        b"\nevent: progress\n",
        b"\nevent: completed\n",
    ),
    "websocket": Mode(
        "websocket",
        "jobstream",
        "/api/v1/jobs/{id}/ws",
        b'{"type":"progress"',
        b'{"type":"completed"',
        websocket=True,
    ),
    # Opt-in: each frame a JSON array of what one wake-up has pending (``?batch=1``).
    "websocket-batch": Mode(
        "websocket-batch",
        "jobstream",
        "/api/v1/jobs/{id}/ws?batch=1",
        b'{"type":"progress"',
        b'{"type":"completed"',
        websocket=True,
    ),
}


def complete_frames(buf: bytes) -> int:
    """How many leading bytes of ``buf`` are whole WebSocket frames (server frames: unmasked)."""
    at, size = 0, len(buf)
    while at + 2 <= size:
        length = buf[at + 1] & 0x7F
        head = 2
        if length == 126:
            head = 4
            if at + head > size:
                break
            length = int.from_bytes(buf[at + 2 : at + 4], "big")
        elif length == 127:
            head = 10
            if at + head > size:
                break
            length = int.from_bytes(buf[at + 2 : at + 10], "big")
        if at + head + length > size:
            break
        at += head + length
    return at


# Latency histogram: 10 us buckets below 100 ms, 1 ms buckets up to 120 s.
FINE_US, FINE_LIMIT_US = 10, 100_000
COARSE_US, COARSE_BUCKETS = 1000, 120_000
FINE_BUCKETS = FINE_LIMIT_US // FINE_US


# -- the load generator (runs in its own process) ------------------------------------------


class Stats:
    def __init__(self, target: int, jobs: int = 1) -> None:
        self.target = target
        self.ready = 0
        self.ready_per_job = [0] * jobs
        self.done = 0
        self.failed = 0
        self.closed_early = 0
        self.received = 0
        self.first_ns = 0
        self.last_ns = 0
        self.delivered = Histogram()
        self.skipped = Histogram()
        self.all_ready: asyncio.Future[None] | None = None
        self.all_done: asyncio.Future[None] | None = None

    def settle(self) -> None:
        if self.all_ready and not self.all_ready.done() and self.ready + self.failed >= self.target:
            self.all_ready.set_result(None)
        if self.all_done and not self.all_done.done() and self.done >= self.target:
            self.all_done.set_result(None)


class Histogram:
    """Latencies in microseconds: 10 us buckets below 100 ms, 1 ms buckets up to 120 s."""

    __slots__ = ("buckets", "count", "max_us", "sum_us")

    def __init__(self) -> None:
        self.buckets = [0] * (FINE_BUCKETS + COARSE_BUCKETS)
        self.count = 0
        self.sum_us = 0
        self.max_us = 0

    def add(self, us: int) -> None:
        if us < FINE_LIMIT_US:
            self.buckets[us // FINE_US if us > 0 else 0] += 1
        else:
            self.buckets[FINE_BUCKETS + min(us // COARSE_US, COARSE_BUCKETS - 1)] += 1
        self.count += 1
        self.sum_us += us
        if us > self.max_us:
            self.max_us = us

    def merged(self, other: Histogram) -> Histogram:
        both = Histogram()
        both.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        both.count = self.count + other.count
        both.sum_us = self.sum_us + other.sum_us
        both.max_us = max(self.max_us, other.max_us)
        return both

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0-1) in milliseconds (the upper bound of its bucket)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                if i < FINE_BUCKETS:
                    return min((i + 1) * FINE_US, self.max_us) / 1000
                return min((i - FINE_BUCKETS + 1) * COARSE_US, self.max_us) / 1000
        return self.max_us / 1000

    def summary(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}count": self.count,
            f"{prefix}p50_ms": self.quantile(0.50),
            f"{prefix}p90_ms": self.quantile(0.90),
            f"{prefix}p99_ms": self.quantile(0.99),
            f"{prefix}p999_ms": self.quantile(0.999),
            f"{prefix}max_ms": self.max_us / 1000,
            f"{prefix}mean_ms": round(self.sum_us / self.count / 1000, 3) if self.count else None,
        }


class SSEConnection(asyncio.Protocol):
    """One SSE client: counts events by scanning bytes, timestamps by one regex per chunk.

    Two latencies are kept. ``delivered``: receipt - publish, for every event received.
    ``skipped``: for the reports a stream never sent (the polling baseline skips most; jobstream
    only coalesced progress), receipt of the next newer one - their publish time (interpolated
    between the two delivered neighbours), i.e. how long until the client saw that state or a
    newer one. Delivered and skipped together: the *visibility* latency of every report.
    """

    __slots__ = (
        "count",
        "ended",
        "head",
        "job",
        "last_number",
        "last_stamp",
        "measure",
        "mode",
        "pending",
        "received",
        "request",
        "stats",
        "transport",
        "upgraded",
    )

    def __init__(
        self, stats: Stats, mode: Mode, request: bytes, measure: bool, job: int = 0
    ) -> None:
        self.stats = stats
        self.job = job
        self.mode = mode
        self.count = mode.count
        self.request = request
        self.measure = measure
        self.pending = b""
        self.head = True
        self.upgraded = False
        self.received = 0
        self.ended = False
        self.last_stamp = 0
        self.last_number = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buf = self.pending + data if self.pending else data
        stats = self.stats
        if self.mode.websocket:
            if not self.upgraded:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    self.pending = buf
                    return
                if not buf.startswith(b"HTTP/1.1 101"):
                    stats.failed += 1
                    self._finish()
                    return
                buf = buf[end + 4 :]
                self.upgraded = True
            end = complete_frames(buf)
        else:
            end = buf.rfind(b"\n\n")
            end = end + 2 if end >= 0 else 0
        if end <= 0:
            self.pending = buf
            return
        part = buf[:end]
        self.pending = buf[end:]
        if self.head:
            # Ready once the first event (the snapshot) is in: events published before it are
            # folded into it, not delivered one by one.
            self.head = False
            if not self.mode.websocket and not part.startswith(b"HTTP/1.1 200"):
                stats.failed += 1
                self._finish()
                return
            stats.ready += 1
            stats.ready_per_job[self.job] += 1
            stats.settle()
        n = part.count(self.count)
        if n:
            self.received += n
            stats.received += n
            if not stats.first_ns:
                stats.first_ns = now
            stats.last_ns = now
            if self.measure:
                self._measure(now, STAMP.findall(part))
        if self.mode.end in part:
            self.ended = True
            self._finish()

    def _measure(self, now: int, stamps: list[tuple[bytes, bytes]]) -> None:
        stats = self.stats
        add = stats.delivered.add
        prev_t, prev_n = self.last_stamp, self.last_number
        for stamp, number in stamps:
            t, n = int(stamp), int(number)
            add((now - t) // 1000)
            gap = n - prev_n
            if gap > 1 and prev_t:
                skip = stats.skipped.add
                step = (t - prev_t) / gap
                for j in range(1, gap):
                    skip(int(now - prev_t - j * step) // 1000)
            prev_t, prev_n = t, n
        self.last_stamp, self.last_number = prev_t, prev_n

    def _finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
            self.stats.done += 1
            self.stats.settle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            if not self.ended:
                self.stats.closed_early += 1
            self._finish()


def _factory(protocol: asyncio.Protocol) -> Callable[[], asyncio.Protocol]:
    return lambda: protocol


async def run_clients(conf: dict[str, Any], pipe: Any) -> dict[str, Any]:
    import psutil

    loop = asyncio.get_running_loop()
    mode = MODES[conf["mode"]]
    n = conf["subscribers"]
    every = conf["latency_every"]
    job_ids: list[str] = conf["job_ids"]
    stats = Stats(n, len(job_ids))
    stats.all_ready = loop.create_future()
    stats.all_done = loop.create_future()

    def request_for(job_id: str) -> bytes:
        if mode.websocket:
            return (
                f"GET {mode.path.format(id=job_id)} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{conf['port']}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        return (
            f"GET {mode.path.format(id=job_id)} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{conf['port']}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()

    requests = [request_for(job_id) for job_id in job_ids]
    connections: list[SSEConnection] = []
    gate = asyncio.Semaphore(200)

    async def connect(i: int) -> None:
        job = i % len(requests)
        async with gate:
            for attempt in range(20):
                conn = SSEConnection(stats, mode, requests[job], i % every == 0, job)
                try:
                    await loop.create_connection(_factory(conn), "127.0.0.1", conf["port"])
                except OSError:
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                connections.append(conn)
                return
            stats.failed += 1
            stats.done += 1
            stats.settle()

    t_connect = time.monotonic()
    await asyncio.gather(*(connect(i) for i in range(n)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(stats.all_ready), timeout=120)
    connect_seconds = time.monotonic() - t_connect

    me, server = os.getpid(), conf["server_pid"]
    pipe.send(("ready", None))  # the orchestrator takes its readings, then answers
    await loop.run_in_executor(None, pipe.recv)
    cpu0 = (
        process_cpu_seconds(server),
        process_cpu_seconds(me),
        cpu_busy_seconds(),
        time.monotonic(),
    )
    Path(conf["start_file"]).touch()  # noqa: ASYNC240 - one file, before the measurement
    pipe.send(("started", None))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(stats.all_done), timeout=conf["timeout"])
    cpu1 = (
        process_cpu_seconds(server),
        process_cpu_seconds(me),
        cpu_busy_seconds(),
        time.monotonic(),
    )
    for conn in connections:
        if conn.transport is not None:
            conn.transport.close()

    wall = cpu1[3] - cpu0[3]
    server_cpu, client_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    window = (stats.last_ns - stats.first_ns) / 1e9
    per_conn = [c.received for c in connections] or [0]
    return {
        "client_cpus": sorted(os.sched_getaffinity(0)),
        "server_cpus": sorted(psutil.Process(server).cpu_affinity()),
        "connected": len(connections),
        "ready": stats.ready,
        "ready_per_job": stats.ready_per_job,
        "failed": stats.failed,
        "closed_early": stats.closed_early,
        "unfinished": stats.target - stats.done,
        "connect_seconds": round(connect_seconds, 2),
        "received": stats.received,
        "received_min": min(per_conn),
        "received_max": max(per_conn),
        "window_seconds": round(window, 3),
        "deliveries_per_s": round(stats.received / window) if window > 0 else 0,
        "latency_every": every,
        **stats.delivered.summary(""),
        **stats.delivered.merged(stats.skipped).summary("visible_"),
        "wall_seconds": round(wall, 3),
        "server_cpu": round(server_cpu / wall, 2) if wall else None,
        "client_cpu": round(client_cpu / wall, 2) if wall else None,
        # CPU the rest of the machine used meanwhile (e.g. test suites running meanwhile), in cores;
        # includes the orchestrating parent and a profiler if one runs.
        "other_cpu": round(max(cpu1[2] - cpu0[2] - server_cpu - client_cpu, 0.0) / wall, 2)
        if wall
        else None,
    }


def client_main(conf: dict[str, Any], pipe: Any) -> None:
    set_affinity(0, conf["cpus"])
    raise_fd_limit()
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        import uvloop

        result = uvloop.run(run_clients(conf, pipe))
    except ImportError:
        result = asyncio.run(run_clients(conf, pipe))
    pipe.send(("result", result))


# -- the orchestration ----------------------------------------------------------------------


class PeakRSS:
    """Samples a process's resident memory every ``every`` seconds in a thread; keeps the max."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self._every = every
        self._stop = threading.Event()
        self.peak = self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> int:
        import psutil

        try:
            return int(self._process.memory_info().rss)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, self.sample())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


GC_METRIC = "jobstream_gc_pause_seconds"


def gc_readings(server: BenchServer) -> dict[str, dict[str, float]]:
    """``jobstream_gc_pause_seconds``: count, sum and cumulative buckets, by label string."""
    names = {part: f"{GC_METRIC}_{part}" for part in ("count", "sum", "bucket")}
    samples = server.metric_samples(*names.values())
    return {part: samples.get(name, {}) for part, name in names.items()}


def gc_during(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """Collections between two readings: how many of each generation, their total time, and
    the histogram bound the longest stayed within (ms: every pause was at most this)."""

    def delta(part: str, labels: str) -> float:
        return after[part][labels] - before[part].get(labels, 0.0)

    gens: dict[str, int] = {}
    longest: float | None = None
    for labels in after["count"]:
        generation = labels.split('"')[1] if '"' in labels else "?"
        n = delta("count", labels)
        gens[generation] = int(n)
        if n <= 0:
            continue
        bounds = [
            _le(b)
            for b in after["bucket"]
            if b.startswith(labels + ",") and delta("bucket", b) >= n
        ]
        if bounds:
            ms = min(bounds) * 1000
            longest = ms if longest is None else max(longest, ms)
    total = sum(after["sum"].values()) - sum(before["sum"].values())
    return {
        "gc_collections": gens,
        "gc_gen2": gens.get("2", 0),
        "gc_seconds": round(total, 3),
        "gc_longest_le_ms": longest,
    }


def _le(labels: str) -> float:
    bound = labels.rsplit('le="', 1)[1].rstrip('"')
    return math.inf if bound == "+Inf" else float(bound)


def run_mode(name: str, args: argparse.Namespace) -> dict[str, Any]:
    mode = MODES[name]
    server_cpus, client_cpus = args.server_cpus, args.client_cpus
    jobs = args.jobs
    asgi = args.asgi_server
    cluster: Cluster | None = None
    if name == "redis":
        # Two instances on PostgreSQL and Redis: A runs the job, the clients watch on B.
        cluster = Cluster()
        env = cluster.env()
        server = BenchServer(
            mode.flavour, cpus=server_cpus, src=args.src, env=env, workers=jobs, asgi_server=asgi
        )
        watched = BenchServer(
            mode.flavour, cpus=server_cpus, src=args.src, env=env, workers=0, asgi_server=asgi
        )
        server.start()
        watched.start()
    else:
        server = watched = BenchServer(
            mode.flavour, cpus=server_cpus, src=args.src, workers=jobs, asgi_server=asgi
        )
        server.start()
    profiler: subprocess.Popen[bytes] | None = None
    rss: PeakRSS | None = None
    gc_before: dict[str, dict[str, float]] = {}
    try:
        quiet = wait_until_quiet(args.wait_quiet)
        start_file = server.tmp / "start"
        params = [
            {
                "interval_ms": args.interval_ms,
                "duration": args.duration,
                "pad": args.pad,
                "start_file": str(start_file),
                "start_timeout": 900.0,  # opening 10,000 streams on a busy machine takes minutes
                # 1,000 jobs looking for the file every 5 ms would keep the server busy.
                "start_poll_ms": 5.0 if jobs == 1 else 100.0,
                "offset_ms": args.interval_ms * j / jobs,
            }
            for j in range(jobs)
        ]
        job_ids = [job["id"] for job in server.submit_many(params)]
        rss_idle = watched.rss_bytes()
        conf = {
            "mode": name,
            "job_ids": job_ids,
            "port": watched.port,
            "server_pid": watched.app_pid,
            "subscribers": args.subscribers,
            "latency_every": args.latency_every,
            "start_file": str(start_file),
            "timeout": args.duration + args.interval_ms / 1000 + args.grace,
            "cpus": client_cpus,
        }
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=client_main, args=(conf, child), daemon=True)
        proc.start()
        rss = PeakRSS(watched.app_pid)
        result: dict[str, Any] | None = None
        rss_ready = 0
        limit = time.monotonic() + args.duration + args.grace + 180
        while result is None:
            if not parent.poll(1.0):
                if not proc.is_alive() or time.monotonic() > limit:
                    raise RuntimeError(f"load generator for {name} stopped without a result")
                continue
            kind, payload = parent.recv()
            if kind == "ready":  # every stream open, the jobs not started yet
                rss_ready = rss.sample()
                gc_before = gc_readings(watched)
                parent.send("go")
            elif kind == "started":
                if args.profile:
                    profiler = start_profiler(watched.app_pid, args, name, client_cpus)
            elif kind == "result":
                result = payload
        rss_peak = rss.stop()
        proc.join(timeout=10)
        finals = [server.wait_finished(job_id, timeout=120) for job_id in job_ids]
        if profiler is not None:
            profiler.wait(timeout=args.duration + 30)
        time.sleep(0.3)  # streams record their coalesced count when they close
        coalesced = int(watched.metric("jobstream_coalesced_events_total"))
        overflows = int(watched.metric("jobstream_overflow_disconnects_total"))
        gc = gc_during(gc_before, gc_readings(watched))
    except BaseException:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        if rss is not None:
            rss.stop()
        if profiler is not None and profiler.poll() is None:
            profiler.terminate()
        server.stop()
        if watched is not server:
            watched.stop()
        if cluster is not None:
            cluster.remove()
    counts = [int((f.get("result") or {}).get("count", 0)) for f in finals]
    rate = sum(float((f.get("result") or {}).get("rate", 0.0)) for f in finals)
    published = sum(counts)
    # streams that answered 200, each expecting every report of its own job
    expected = sum(c * r for c, r in zip(counts, result["ready_per_job"], strict=True))
    lost = expected - result["received"]
    statuses = sorted({f["status"] for f in finals})
    result.pop("ready_per_job")
    return {
        "asgi_server": asgi,
        "mode": name,
        "subscribers": args.subscribers,
        "jobs": jobs,
        "interval_ms": args.interval_ms,
        "duration": args.duration,
        "pad": args.pad,
        "job_status": statuses[0] if len(statuses) == 1 else statuses,
        "published": published,
        "published_per_s": round(rate),
        "offered_per_s": round(rate * result["ready"] / jobs),
        **result,
        "expected": expected,
        "lost": lost,
        "coalesced": coalesced if mode.flavour == "jobstream" else None,
        "unexplained": lost - coalesced if mode.flavour == "jobstream" else None,
        "overflow_disconnects": overflows,
        "rss_idle_mb": round(rss_idle / 2**20, 1),
        "rss_ready_mb": round(rss_ready / 2**20, 1),
        "rss_peak_mb": round(rss_peak / 2**20, 1),
        "kb_per_subscriber": round((rss_peak - rss_idle) / 1024 / args.subscribers, 1),
        **gc,
        "busy_cores_before": quiet["busy_cores_before"],
        "load_before": round(quiet["load_before"], 2),
    }


class Cluster:
    """A PostgreSQL database and a Redis key prefix of this run's own, removed after."""

    ADMIN = os.environ.get(
        "JOBSTREAM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/postgres"
    )
    REDIS = os.environ.get("JOBSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

    def __init__(self) -> None:
        import secrets

        self.name = f"jobstream_bench_{secrets.token_hex(4)}"
        self.prefix = f"jobstream-bench-{secrets.token_hex(4)}:"
        self._admin(f'CREATE DATABASE "{self.name}"')
        if os.environ.get("JOBSTREAM_BENCH_PG_SYNCHRONOUS_COMMIT"):
            # e.g. "off": commits without waiting for the disk (what SQLite's WAL with
            # synchronous=NORMAL does); the database's default waits for an fsync per commit.
            value = os.environ["JOBSTREAM_BENCH_PG_SYNCHRONOUS_COMMIT"]
            self._admin(f'ALTER DATABASE "{self.name}" SET synchronous_commit = {value}')

    def _admin(self, sql: str) -> None:
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.ADMIN)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def env(self) -> dict[str, str]:
        base = self.ADMIN.rsplit("/", 1)[0]
        return {
            "JOBSTREAM_STORE_URL": f"{base}/{self.name}",
            "JOBSTREAM_BUS_URL": self.REDIS,
            "JOBSTREAM_REDIS_PREFIX": self.prefix,
        }

    def remove(self) -> None:
        import redis

        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        client = redis.Redis.from_url(self.REDIS)
        for key in client.scan_iter(match=f"{self.prefix}*"):
            client.delete(key)
        client.close()


def start_profiler(
    pid: int, args: argparse.Namespace, name: str, cpus: set[int] | None
) -> subprocess.Popen[bytes]:
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}-{args.subscribers}sub-{args.interval_ms:g}ms.txt"
    py_spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(args.duration))]
    cmd += ["--rate", "250", "--format", "raw", "--nonblocking", "--output", str(target)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    set_affinity(proc.pid, cpus)
    return proc


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


CURVE_INTERVALS = {100: 1.0, 1000: 10.0, 5000: 100.0, 10000: 500.0}
"""The report interval per curve point: subscribers x events/s = 100k, 100k, 50k, 20k/s."""

TARGETS = {
    # subscribers: (deliveries/s at least, p99 ms at most); the performance issue's figures
    100: (100_000, 5.0),
    1000: (100_000, 150.0),
    5000: (50_000, 150.0),
    10000: (20_000, 250.0),
}


@dataclass(frozen=True)
class Point:
    subscribers: int
    jobs: int
    interval_ms: float


def parse_curve(spec: str) -> list[Point]:
    """``SUBS[/JOBS][:INTERVAL_MS]``, comma-separated: ``100,1000,5000,10000,10000/1000``."""
    points = []
    for part in spec.split(","):
        head, _, interval = part.strip().partition(":")
        subs, _, jobs = head.partition("/")
        n, j = int(subs), int(jobs or 1)
        if interval:
            ms = float(interval)
        elif n in CURVE_INTERVALS:
            ms = CURVE_INTERVALS[n]
        else:
            raise ValueError(f"curve point {part!r}: no default interval for {n} subscribers")
        if n < j or n % j:
            raise ValueError(f"curve point {part!r}: {n} subscribers do not spread over {j} jobs")
        points.append(Point(n, j, ms))
    return points


def judge(row: dict[str, Any]) -> dict[str, Any]:
    """The point's target and whether the run met it (deliveries/s within 5 %, p99)."""
    target = TARGETS.get(row["subscribers"])
    offered = row["subscribers"] * 1000 / row["interval_ms"]
    if target is None or abs(offered - target[0]) > 0.01 * target[0]:
        return {"target": None, "met": None}
    rate, p99 = target
    ok = (row["deliveries_per_s"] or 0) >= 0.95 * rate and (row["p99_ms"] or math.inf) <= p99
    return {"target": f">={rate // 1000}k/s p99<={p99:g}", "met": "yes" if ok else "no"}


def table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("server", "asgi_server", 0),
        ("mode", "mode", 0),
        ("subs", "subscribers", 0),
        ("jobs", "jobs", 0),
        ("interval ms", "interval_ms", 1),
        ("published/s", "published_per_s", 0),
        ("deliveries/s", "deliveries_per_s", 0),
        ("p50 ms", "p50_ms", 2),
        ("p99 ms", "p99_ms", 2),
        ("max ms", "max_ms", 1),
        ("seen p99", "visible_p99_ms", 1),
        ("lost", "lost", 0),
        ("coalesced", "coalesced", 0),
        ("unexplained", "unexplained", 0),
        ("server cpu", "server_cpu", 2),
        ("client cpu", "client_cpu", 2),
        ("other cpu", "other_cpu", 2),
        ("RSS idle MB", "rss_idle_mb", 1),
        ("RSS peak MB", "rss_peak_mb", 1),
        ("gc gen2", "gc_gen2", 0),
        ("gc s", "gc_seconds", 3),
        ("gc max <= ms", "gc_longest_le_ms", 1),
        ("target", "target", 0),
        ("met", "met", 0),
    ]
    cells = [[h for h, _, _ in cols]]
    for row in rows:
        cells.append([fmt(row.get(key), d) for _, key, d in cols])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    lines = []
    for j, r in enumerate(cells):
        padded = (c.rjust(w) if j else c.ljust(w) for c, w in zip(r, widths, strict=True))
        lines.append(" | ".join(padded))
        if j == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="N SSE subscribers on one job: publish-to-receipt latency and deliveries/s."
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1, help="spread the subscribers over J jobs")
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of reporting")
    parser.add_argument(
        "--curve",
        metavar="POINTS",
        help="run these points in turn, e.g. 100,1000,5000,10000,10000/1000 "
        "(SUBS[/JOBS][:INTERVAL_MS]); --subscribers, --jobs and --interval-ms are ignored",
    )
    parser.add_argument(
        "--mode",
        choices=[*MODES, "cluster", "both", "all", "ws"],
        default=None,
        help="default: both (jobstream and baseline); with --curve, jobstream and queue",
    )
    parser.add_argument(
        "--asgi-server",
        choices=[*ASGI_SERVERS, "both"],
        default="uvicorn",
        help="serve the app under uvicorn (jobstream serve), granian, or each in turn",
    )
    parser.add_argument("--pad", type=int, default=0, help="bytes of padding per message")
    parser.add_argument(
        "--latency-every", type=int, default=1, help="measure latency on every K-th connection"
    )
    parser.add_argument(
        "--grace", type=float, default=60.0, help="seconds to wait after the job's planned end"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each mode, wait up to this many seconds for the rest of the machine to be "
        "quiet (< 0.3 cores busy)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="run every mode this many times")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and clients")
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the server during the run (raw stacks in DIR)"
    )
    parser.add_argument(
        "--src", metavar="DIR", help="run the servers on the jobstream package in DIR (a src/)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if args.latency_every < 1:
        parser.error("--latency-every must be at least 1")
    try:
        points = (
            parse_curve(args.curve)
            if args.curve
            else [Point(args.subscribers, args.jobs, args.interval_ms)]
        )
    except ValueError as exc:
        parser.error(str(exc))
    limit = raise_fd_limit()
    if max(p.subscribers for p in points) + 200 > limit:
        parser.error(f"the open-files limit ({limit}) is too low for this many subscribers")
    # Decide the split once, before this process pins itself to the load generator's core.
    args.server_cpus, args.client_cpus = cpu_plan(not args.no_pin)
    set_affinity(0, args.client_cpus)  # the orchestrator stays off the server's core too
    mode = args.mode or ("curve" if args.curve else "both")
    names = {
        "both": ["jobstream", "baseline"],
        "all": ["jobstream", "websocket", "baseline", "queue"],
        "cluster": ["jobstream", "redis"],
        "ws": ["jobstream", "websocket", "websocket-batch"],
        "curve": ["jobstream", "queue"],
    }.get(mode, [mode])
    servers = list(ASGI_SERVERS) if args.asgi_server == "both" else [args.asgi_server]
    rows = []
    for point in points:
        for _ in range(args.repeat):
            for name in names:
                for asgi in servers:
                    run_args = argparse.Namespace(**vars(args))
                    run_args.subscribers = point.subscribers
                    run_args.jobs = point.jobs
                    run_args.interval_ms = point.interval_ms
                    run_args.asgi_server = asgi
                    try:
                        row = run_mode(name, run_args)
                    except Exception as exc:  # one failed point does not end a curve
                        if not args.curve:
                            raise
                        print(f"{asgi} {name} {point}: {exc!r}", file=sys.stderr, flush=True)
                        continue
                    rows.append({**row, **judge(row)})
                    print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    if args.json:
        print(
            json.dumps(
                {"machine": machine_info(), "args": vars(args), "runs": rows},
                indent=2,
                default=lambda o: sorted(o) if isinstance(o, set) else str(o),
            )
        )
    else:
        info = machine_info()
        print(
            f"{info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
            f"clients on {info['client_loop']}; {args.duration:g} s per mode"
        )
        print(table(rows))


if __name__ == "__main__":
    main()
