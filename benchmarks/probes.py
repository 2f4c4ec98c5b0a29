"""Fault probes against real ``jobstream serve`` processes: do the guarantees still hold?

Three probes, each bounded to a few minutes, each printing the figures docs/benchmarks.md quotes
("Probes") and exiting non-zero when a figure that must be 0 is not:

``storm``
    ~100 jobs reporting (the ``bench`` kind); for each job one SSE client
    (``/api/v1/jobs/{id}/events``) and one WebSocket client (``/api/v1/jobs/{id}/ws``) that
    cut their connection at random points (after a random number of events, or at a random
    moment, mid-frame included: the socket is aborted) and resume from the last seq they saw
    (``Last-Event-ID`` / ``?after_seq=``), until the job's terminal event. Then every client's
    received sequence is compared with the job's stored log (``?last_event_id=0``): missing,
    duplicated and differing events must all be 0.
``crash``
    80 running jobs; rounds of SIGKILL and restart on the same data folder, timing each restart
    until ``/readyz`` answers 200. Jobs of a ``requeue`` kind (``bench_requeue``) run through
    every round and must be re-queued at each restart and complete at the end; jobs of a
    ``fail`` kind (``bench``) must be failed as interrupted (each round adds new ones so that 80
    are running at every kill). One SSE reader per job follows it across the restarts,
    resuming from its last seq. At the end: none stuck (queued or running), every log gap-free
    (seqs 1..n), and every reader's sequence equal to the stored log.
``sigterm``
    ~1,050 open SSE streams on running jobs, then SIGTERM: the time until the server process
    exits, when the streams ended, and how each ended: a clean end of the HTTP response (the
    last chunk of the chunked body) or a reset/truncated connection. The exit waits for the
    running jobs to reach a cancel checkpoint: the ``bench`` kind reaches one at its next report,
    so the exit time grows with ``--interval-ms`` (the streams' end does not).

Run from the repository root: ``.venv/bin/python benchmarks/probes.py storm`` (``crash``,
``sigterm``, ``all``; ``--help`` for the sizes). The servers are started as the benchmarks start
theirs (``harness.BenchServer``: auth ``none``, a temporary data folder, the ``bench`` kinds);
the server is pinned to one core and this script to the others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from harness import BenchServer, cpu_plan, machine_info, raise_fd_limit, set_affinity

TERMINAL = {"completed", "failed", "cancelled"}
PROBE_ENV = {
    # Every event of a probe's job stays in its log, so the log can be compared whole.
    "JOBSTREAM_MAX_EVENTS_PER_JOB": "1000000",
}


# --- a raw HTTP/1.1 SSE client: it sees exactly how a response ends -------------------------


class StreamEnd(Exception):
    """The response ended; ``how`` is ``clean`` (the chunked body's last chunk), ``reset``
    (ECONNRESET) or ``truncated`` (EOF before the last chunk)."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


@dataclass
class SSEEvent:
    id: int | None
    event: str | None
    data: bytes


class RawSSE:
    """One SSE request on its own socket, read chunk by chunk."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self._buffer = b""

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str] | None = None) -> RawSSE:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"{extra}\r\n".encode()
        )
        self = cls(reader, writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.transport.abort()
            raise
        self.status = int(head.split(b" ", 2)[1])
        if b"transfer-encoding: chunked" not in head.lower():
            writer.transport.abort()
            raise RuntimeError(f"not a chunked stream: {head!r}")
        return self

    async def _chunk(self) -> bytes:
        try:
            line = await self.reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                raise StreamEnd("clean")
            return (await self.reader.readexactly(size + 2))[:-2]
        except ConnectionResetError:
            raise StreamEnd("reset") from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            raise StreamEnd("truncated") from None

    async def next(self) -> SSEEvent:
        """The next event (comments and ``retry:`` skipped); ``StreamEnd`` when it ends."""
        while True:
            sep = self._buffer.find(b"\n\n")
            if sep < 0:
                self._buffer += await self._chunk()
                continue
            block, self._buffer = self._buffer[:sep], self._buffer[sep + 2 :]
            event = parse_block(block)
            if event is not None:
                return event

    async def events(self) -> AsyncIterator[SSEEvent]:
        with contextlib.suppress(StreamEnd):
            while True:
                yield await self.next()

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()


def parse_block(block: bytes) -> SSEEvent | None:
    id_: int | None = None
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"id":
            id_ = int(value)
        elif name == b"event":
            event = value.decode()
        elif name == b"data":
            data.append(value)
    if not data:
        return None
    return SSEEvent(id_, event, b"\n".join(data))


async def stored_log(port: int, job_id: str) -> list[SSEEvent]:
    """A job's whole stored log: its SSE stream from ``last_event_id=0`` (it closes after the
    terminal event)."""
    stream = await RawSSE.open(port, f"/api/v1/jobs/{job_id}/events?last_event_id=0")
    try:
        return [e async for e in stream.events()]
    finally:
        await stream.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def pinned(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    server_cpus, client_cpus = cpu_plan(pin)
    set_affinity(os.getpid(), client_cpus)
    return server_cpus, client_cpus


# --- 1. reconnect storm ---------------------------------------------------------------------


@dataclass
class Watcher:
    job_id: str
    transport: str
    received: list[tuple[int, str, bytes]] = field(default_factory=list)
    last: int = 0
    connects: int = 0
    cuts: int = 0
    refused: int = 0
    ends: Counter[str] = field(default_factory=Counter)
    done: bool = False


def cut_plan(rng: random.Random, max_events: int, max_seconds: float) -> tuple[int, float]:
    """After how many events, or how many seconds (whichever comes first), to cut."""
    return rng.randint(0, max_events), rng.uniform(0.0, max_seconds)


async def sse_watcher(port: int, w: Watcher, rng: random.Random, args: argparse.Namespace) -> None:
    while not w.done:
        budget, seconds = cut_plan(rng, args.max_events_per_cut, args.max_seconds_per_cut)
        try:
            stream = await RawSSE.open(
                port, f"/api/v1/jobs/{w.job_id}/events", {"Last-Event-ID": str(w.last)}
            )
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            w.refused += 1
            await asyncio.sleep(0.1)
            continue
        if stream.status != 200:
            w.refused += 1
            stream.abort()
            await asyncio.sleep(0.1)
            continue
        w.connects += 1
        got = 0
        try:
            async with asyncio.timeout(seconds):
                while got < budget:
                    event = await stream.next()
                    if event.id is None or event.event in (None, "snapshot", "timeout"):
                        continue
                    w.received.append((event.id, event.event, event.data))
                    w.last = event.id
                    got += 1
                    if event.event in TERMINAL:
                        w.done = True
                        break
        except TimeoutError:
            pass
        except StreamEnd as end:
            w.ends[end.how] += 1  # the server ended it (overflow, time limit): resume
            await stream.close()
            continue
        if w.done:
            await stream.close()
        else:
            stream.abort()
            w.cuts += 1


async def ws_watcher(port: int, w: Watcher, rng: random.Random, args: argparse.Namespace) -> None:
    while not w.done:
        budget, seconds = cut_plan(rng, args.max_events_per_cut, args.max_seconds_per_cut)
        url = f"ws://127.0.0.1:{port}/api/v1/jobs/{w.job_id}/ws?after_seq={w.last}"
        try:
            ws = await connect(url, max_size=None, compression=None, ping_interval=None)
        except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake):
            w.refused += 1
            await asyncio.sleep(0.1)
            continue
        w.connects += 1
        got = 0
        try:
            async with asyncio.timeout(seconds):
                while got < budget:
                    text = await ws.recv(decode=False)  # the frame's bytes, as sent
                    body = json.loads(text)
                    if body.get("type") == "snapshot":
                        continue
                    w.received.append((body["seq"], body["type"], text))
                    w.last = body["seq"]
                    got += 1
                    if body["type"] in TERMINAL:
                        w.done = True
                        break
        except TimeoutError:
            pass
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006
            w.ends[f"close {code}"] += 1
            continue
        except OSError:
            w.ends["os error"] += 1
            continue
        if w.done:
            with contextlib.suppress(Exception):
                await ws.close()
        else:
            ws.transport.abort()
            w.cuts += 1


def compare(stored: list[SSEEvent], received: list[tuple[int, str, bytes]]) -> dict[str, int]:
    by_seq = {e.id: (e.event, e.data) for e in stored if e.id is not None}
    seen: Counter[int] = Counter(seq for seq, _, _ in received)
    firsts: dict[int, tuple[str, bytes]] = {}
    for seq, type_, data in received:
        firsts.setdefault(seq, (type_, data))
    order = [seq for seq, _, _ in received]
    return {
        "compared": len(by_seq),
        "missing": sum(1 for seq in by_seq if seq not in seen),
        "duplicated": sum(n - 1 for n in seen.values()),
        "differing": sum(1 for seq, ev in firsts.items() if by_seq.get(seq) != ev),
        "out_of_order": sum(1 for a, b in itertools.pairwise(order) if b <= a),
    }


async def storm_clients(server: BenchServer, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    params = {"interval_ms": args.interval_ms, "count": args.events, "duration": None}
    jobs = [server.submit(params)["id"] for _ in range(args.jobs)]
    watchers = [Watcher(j, t) for j in jobs for t in ("sse", "ws")]
    started = time.monotonic()
    tasks = []
    for w in watchers:
        run = sse_watcher if w.transport == "sse" else ws_watcher
        tasks.append(asyncio.create_task(run(server.port, w, random.Random(rng.random()), args)))
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()  # a client's own error is the probe's, not the server's: raise it
    took = time.monotonic() - started
    totals: Counter[str] = Counter()
    for job_id in jobs:
        stored = await stored_log(server.port, job_id)
        if not stored or stored[-1].event not in TERMINAL:
            totals["unended_logs"] += 1
        for w in watchers:
            if w.job_id == job_id:
                totals.update(compare(stored, w.received))
    ends: Counter[str] = Counter()
    for w in watchers:
        ends.update(w.ends)
    return {
        "jobs": len(jobs),
        "clients": len(watchers),
        "cuts": sum(w.cuts for w in watchers),
        "cuts_sse": sum(w.cuts for w in watchers if w.transport == "sse"),
        "cuts_ws": sum(w.cuts for w in watchers if w.transport == "ws"),
        "connects": sum(w.connects for w in watchers),
        "refused": sum(w.refused for w in watchers),
        "server_ended": dict(ends),
        "events_compared": totals["compared"],
        "missing": totals["missing"],
        "duplicated": totals["duplicated"],
        "differing": totals["differing"],
        "out_of_order": totals["out_of_order"],
        "unfinished_clients": len(pending),
        "unended_logs": totals["unended_logs"],
        "coalesced": server.metric("jobstream_coalesced_events_total"),
        "seconds": round(took, 1),
    }


def storm(args: argparse.Namespace) -> dict[str, Any]:
    server_cpus, _ = pinned(args.pin)
    env = {**PROBE_ENV, "JOBSTREAM_WORKERS": str(args.jobs)}
    server = BenchServer("jobstream", cpus=server_cpus, env=env, workers=args.jobs, src=args.src)
    with server:
        result = asyncio.run(storm_clients(server, args))
    result["ok"] = (
        result["missing"] == result["duplicated"] == result["differing"] == 0
        and result["unfinished_clients"] == result["unended_logs"] == 0
    )
    print(
        f"storm: {result['cuts']} cuts ({result['cuts_sse']} SSE, {result['cuts_ws']} WebSocket; "
        f"{result['connects']} connections, {result['refused']} refused) over {result['jobs']} "
        f"jobs, {result['clients']} clients, {result['seconds']} s; "
        f"{result['events_compared']} events compared: missing {result['missing']}, "
        f"duplicated {result['duplicated']}, differing {result['differing']} "
        f"(out of order {result['out_of_order']}, clients without the end "
        f"{result['unfinished_clients']}, coalesced {result['coalesced']:.0f}, "
        f"ended by the server {result['server_ended']})"
    )
    return result


# --- 2. crash loop --------------------------------------------------------------------------


def wait_ready(server: BenchServer, timeout: float = 60.0) -> float:
    """Seconds from now until ``/readyz`` answers 200."""
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() - started < timeout:
            assert server.proc is not None
            if server.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/readyz").status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.01)
    raise RuntimeError(f"not ready within {timeout} s:\n{server.log_tail()}")


def import_seconds(src: str | None, runs: int = 3) -> float:
    """The floor of a restart: starting the interpreter and importing the server (median)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTREAM_")}
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    code = "import uvicorn, jobstream.cli, jobstream.server.app"
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def statuses(client: httpx.Client, ids: list[str]) -> dict[str, str]:
    out = {}
    for job_id in ids:
        out[job_id] = client.get(f"/api/v1/jobs/{job_id}").json()["status"]
    return out


def wait_running(client: httpx.Client, ids: list[str], timeout: float) -> dict[str, str]:
    """Until every job of ``ids`` runs (or ``timeout``); their statuses."""
    deadline = time.monotonic() + timeout
    while True:
        now = statuses(client, ids)
        if all(s == "running" for s in now.values()) or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


async def follow(port: int, w: Watcher) -> None:
    """Read a job's stream to its terminal event, across server crashes: after any end of the
    response, reconnect (the server may be down a while) and resume from the last seq seen."""
    while not w.done:
        try:
            stream = await RawSSE.open(
                port, f"/api/v1/jobs/{w.job_id}/events", {"Last-Event-ID": str(w.last)}
            )
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            w.refused += 1
            await asyncio.sleep(0.05)
            continue
        if stream.status != 200:
            w.refused += 1
            stream.abort()
            await asyncio.sleep(0.05)
            continue
        w.connects += 1
        try:
            while not w.done:
                event = await stream.next()
                if event.id is None or event.event in (None, "snapshot", "timeout"):
                    continue
                w.received.append((event.id, event.event, event.data))
                w.last = event.id
                w.done = event.event in TERMINAL
        except StreamEnd as end:
            w.ends[end.how] += 1
        finally:
            stream.abort()


class Followers:
    """One ``follow`` per job, on an event loop in a thread of their own (the crash loop that
    kills and restarts the server is plain blocking code)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.watchers: list[Watcher] = []
        self.futures: list[futures.Future[None]] = []

    def add(self, job_id: str) -> None:
        w = Watcher(job_id, "sse")
        self.watchers.append(w)
        self.futures.append(asyncio.run_coroutine_threadsafe(follow(self.port, w), self.loop))

    def finish(self, timeout: float) -> int:
        """Wait for every follower to see its job's end; how many did not."""
        _, pending = futures.wait(self.futures, timeout=timeout)
        for future in pending:
            future.cancel()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        return len(pending)


def crash(args: argparse.Namespace) -> dict[str, Any]:
    server_cpus, _ = pinned(args.pin)
    rng = random.Random(args.seed)
    env = {**PROBE_ENV, "JOBSTREAM_WORKERS": str(args.running + 20)}
    workers = args.running + 20
    server = BenchServer("jobstream", cpus=server_cpus, env=env, workers=workers, src=args.src)
    run_count = max(1, round(args.run_seconds * 1000 / args.interval_ms))
    requeue_params = {"interval_ms": args.interval_ms, "count": run_count, "duration": None}
    fail_params = {"interval_ms": args.interval_ms, "duration": 3600.0}
    n_requeue = args.running - args.fail_jobs
    restarts: list[float] = []
    requeue_ids: list[str] = []
    fail_ids: list[str] = []
    kills_seen: Counter[str] = Counter()
    followers = Followers(server.port)
    unfinished = 0
    floor = import_seconds(args.src)
    started = time.monotonic()
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(n_requeue):
                requeue_ids.append(server.submit(requeue_params, kind="bench_requeue")["id"])
                if args.follow:
                    followers.add(requeue_ids[-1])
            for rnd in range(args.rounds):
                live_fail = [
                    server.submit(fail_params, kind="bench")["id"] for _ in range(args.fail_jobs)
                ]
                fail_ids += live_fail
                for job_id in live_fail if args.follow else []:
                    followers.add(job_id)
                now = wait_running(client, requeue_ids + live_fail, timeout=30)
                running = [j for j, s in now.items() if s == "running"]
                if len(running) != len(now):
                    print(f"  round {rnd + 1}: only {len(running)}/{len(now)} running", flush=True)
                time.sleep(rng.uniform(0.2, 1.0))  # let them report, then kill at a random moment
                kills_seen.update(running)
                server.kill()
                server.spawn()
                restarts.append(wait_ready(server))
            # After the last restart: the re-queued jobs run again to the end.
            deadline = time.monotonic() + args.run_seconds + 60
            final = statuses(client, requeue_ids + fail_ids)
            while time.monotonic() < deadline and any(s not in TERMINAL for s in final.values()):
                time.sleep(0.5)
                final = statuses(client, requeue_ids + fail_ids)
        unfinished = followers.finish(timeout=30)
        logs = asyncio.run(all_logs(server.port, requeue_ids + fail_ids))
    finally:
        if followers.thread.is_alive():
            followers.finish(timeout=0)
        server.stop()
    seen: Counter[str] = Counter()
    for w in followers.watchers:
        seen.update(compare(logs[w.job_id], w.received))
    gaps = 0
    wrong = []
    requeues_per_job = []
    for job_id, log in logs.items():
        seqs = [e.id for e in log]
        if seqs != list(range(1, len(seqs) + 1)):
            gaps += 1
        moves = [json.loads(e.data)["data"] for e in log if e.event == "status_change"]
        requeues = [m for m in moves if m["new_status"] == "queued" and m.get("reason")]
        terminal = log[-1].event if log else None
        if job_id in requeue_ids:
            requeues_per_job.append(len(requeues))
            ok = terminal == "completed" and len(requeues) == kills_seen[job_id]
        else:
            message = json.loads(log[-1].data)["data"].get("message", "") if log else ""
            ok = terminal == "failed" and message.startswith("Interrupted") and not requeues
        if not ok:
            wrong.append((job_id, terminal, len(requeues), kills_seen[job_id]))
    stuck = sum(1 for s in final.values() if s in ("running", "queued"))
    result = {
        "restarts": len(restarts),
        "running_at_each_kill": args.running,
        "jobs": len(logs),
        "requeue_jobs": len(requeue_ids),
        "fail_jobs": len(fail_ids),
        "recovered": len(logs) - len(wrong) - stuck,
        "wrong": wrong,
        "stuck": stuck,
        "logs_with_gaps": gaps,
        "followers": len(followers.watchers),
        "follower_connections": sum(w.connects for w in followers.watchers),
        "followers_unfinished": unfinished,
        "followed_events_compared": seen["compared"],
        "followed_missing": seen["missing"],
        "followed_duplicated": seen["duplicated"],
        "followed_differing": seen["differing"],
        "followed_out_of_order": seen["out_of_order"],
        "requeues_per_requeue_job": [min(requeues_per_job), max(requeues_per_job)]
        if requeues_per_job
        else [],
        "restart_p50_s": round(statistics.median(restarts), 3) if restarts else None,
        "restart_max_s": round(max(restarts), 3) if restarts else None,
        "restart_s": [round(r, 3) for r in restarts],
        "import_s": round(floor, 3),
        "seconds": round(time.monotonic() - started, 1),
    }
    followed_bad = seen["missing"] + seen["duplicated"] + seen["differing"] + unfinished
    result["ok"] = not wrong and stuck == 0 and gaps == 0 and followed_bad == 0
    print(
        f"crash: {result['restarts']} SIGKILL + restart with {args.running} running jobs each; "
        f"restart to /readyz p50 {result['restart_p50_s']} s, max {result['restart_max_s']} s "
        f"(interpreter start and imports alone: {result['import_s']} s); "
        f"{result['jobs']} jobs ({result['requeue_jobs']} re-queued kind, re-queued "
        f"{result['requeues_per_requeue_job']} times each, then completed; "
        f"{result['fail_jobs']} failed as interrupted): recovered {result['recovered']}, "
        f"not as their policy says {len(wrong)}, stuck {stuck}, logs with gaps {gaps}; "
        f"{result['seconds']} s\n"
        f"crash: {result['followers']} SSE followers, one per job, resuming across the restarts "
        f"({result['follower_connections']} connections, {unfinished} without the job's end): "
        f"{seen['compared']} events compared with the stored logs: missing {seen['missing']}, "
        f"duplicated {seen['duplicated']}, differing {seen['differing']} "
        f"(out of order {seen['out_of_order']})"
    )
    return result


async def all_logs(port: int, ids: list[str]) -> dict[str, list[SSEEvent]]:
    sem = asyncio.Semaphore(20)

    async def one(job_id: str) -> tuple[str, list[SSEEvent]]:
        async with sem:
            return job_id, await stored_log(port, job_id)

    return dict(await asyncio.gather(*(one(j) for j in ids)))


# --- 3. SIGTERM with many streams -------------------------------------------------------------


async def sigterm_clients(server: BenchServer, args: argparse.Namespace) -> dict[str, Any]:
    params = {"interval_ms": args.interval_ms, "duration": 3600.0}
    jobs = [server.submit(params)["id"] for _ in range(args.jobs)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_running(client, jobs, timeout=30)
    sem = asyncio.Semaphore(100)
    streams: list[RawSSE] = []

    async def open_one(i: int) -> None:
        async with sem:
            stream = await RawSSE.open(server.port, f"/api/v1/jobs/{jobs[i % len(jobs)]}/events")
            assert stream.status == 200, stream.status
            first = await stream.next()
            assert first.event == "snapshot", first
            streams.append(stream)

    await asyncio.gather(*(open_one(i) for i in range(args.streams)))
    await asyncio.sleep(0.5)
    open_now = server.metric("jobstream_open_streams")

    async def until_end(stream: RawSSE) -> tuple[str, str | None, float]:
        last = None
        try:
            while True:
                event = await stream.next()
                last = event.event
        except StreamEnd as end:
            return end.how, last, time.monotonic()
        finally:
            stream.abort()

    ends = [asyncio.create_task(until_end(s)) for s in streams]
    assert server.proc is not None
    proc: subprocess.Popen[bytes] = server.proc
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(proc.wait, 60)
    took = time.monotonic() - started
    done, pending = await asyncio.wait(ends, timeout=10)
    for task in pending:
        task.cancel()
    outcomes = Counter(t.result()[0] for t in done)
    last_events = Counter(str(t.result()[1]) for t in done)
    ended_after = [t.result()[2] - started for t in done]
    return {
        "streams": len(streams),
        "open_streams_metric": open_now,
        "jobs": len(jobs),
        "clean": outcomes["clean"],
        "reset": outcomes["reset"],
        "truncated": outcomes["truncated"],
        "still_open": len(pending),
        "last_event": dict(last_events),
        "exit_code": code,
        "seconds_to_exit": round(took, 3),
        "streams_ended_p50_s": round(pct(ended_after, 0.5), 3),
        "streams_ended_max_s": round(max(ended_after, default=0.0), 3),
    }


def sigterm(args: argparse.Namespace) -> dict[str, Any]:
    server_cpus, _ = pinned(args.pin)
    raise_fd_limit()
    env = {**PROBE_ENV, "JOBSTREAM_WORKERS": str(args.jobs)}
    server = BenchServer("jobstream", cpus=server_cpus, env=env, workers=args.jobs, src=args.src)
    try:
        server.start()
        result = asyncio.run(sigterm_clients(server, args))
    finally:
        server.stop()
    result["ok"] = result["clean"] == result["streams"]
    print(
        f"sigterm: {result['streams']} open SSE streams on {result['jobs']} running jobs "
        f"(server counted {result['open_streams_metric']:.0f}); SIGTERM -> exit "
        f"{result['exit_code']} in {result['seconds_to_exit']} s (streams ended after p50 "
        f"{result['streams_ended_p50_s']} s, max {result['streams_ended_max_s']} s); clean end "
        f"{result['clean']}, reset {result['reset']}, truncated {result['truncated']}, "
        f"still open {result['still_open']}; last event before the end {result['last_event']}"
    )
    return result


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--src", help="run the servers on the jobstream package in this src/")
    sub = parser.add_subparsers(dest="probe", required=True)

    s = sub.add_parser("storm", help="random cuts and resumes on SSE and WebSocket")
    s.add_argument("--jobs", type=int, default=100)
    s.add_argument("--events", type=int, default=400, help="progress reports per job")
    s.add_argument("--interval-ms", type=float, default=50.0)
    s.add_argument("--max-events-per-cut", type=int, default=60)
    s.add_argument("--max-seconds-per-cut", type=float, default=4.0)
    s.add_argument("--timeout", type=float, default=240.0)

    c = sub.add_parser("crash", help="SIGKILL and restart in a loop with running jobs")
    c.add_argument("--rounds", type=int, default=10)
    c.add_argument("--running", type=int, default=80, help="jobs running at each kill")
    c.add_argument("--fail-jobs", type=int, default=20, help="of them, of a 'fail' kind")
    c.add_argument("--run-seconds", type=float, default=15.0, help="one run of a re-queued job")
    c.add_argument("--interval-ms", type=float, default=100.0)
    c.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="no SSE reader per job across the restarts (they reconnect while a server starts)",
    )

    t = sub.add_parser("sigterm", help="SIGTERM with many open SSE streams")
    t.add_argument("--streams", type=int, default=1050)
    t.add_argument("--jobs", type=int, default=50)
    t.add_argument("--interval-ms", type=float, default=100.0)

    sub.add_parser("all", help="the three, at their default sizes")
    args = parser.parse_args(argv)
    probes = {"storm": storm, "crash": crash, "sigterm": sigterm}
    results = {}
    for name in probes if args.probe == "all" else [args.probe]:
        if args.probe == "all":
            pin = [] if args.pin else ["--no-pin"]
            src = ["--src", args.src] if args.src else []
            run_args = parser.parse_args([*pin, *src, "--seed", str(args.seed), name])
        else:
            run_args = args
        results[name] = probes[name](run_args)
    if args.json:
        print(json.dumps({"machine": machine_info(), **results}, indent=2, default=str))
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
