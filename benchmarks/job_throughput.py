"""Job throughput of the embedded pool: no-op jobs submitted over HTTP → completed per second,
and the submit latency under that load.

For each run a real ``jobstream serve`` is started in a subprocess (pinned to one core) with its
embedded pool (``--concurrency`` workers) and its default store (SQLite in its own temporary data
folder; ``--store postgres``: a PostgreSQL database of the run's own, dropped after). A load
generator in a separate process (pinned to the other core) keeps ``--connections`` keep-alive
HTTP/1.1 connections and submits ``--jobs`` ``noop`` jobs (``kinds.py``) through them: as fast
as the server answers, or on an absolute schedule of ``--rate`` per second (open loop: a
request waits for a free connection when the server falls behind, and its latency is counted
from its due time, so a backlog shows in the percentiles). The clock starts at the first
submit and stops when the store counts every job completed (``/metrics``, polled every 50 ms,
and once more after the last submit's job ended), so

- jobs/s = jobs / (last completion seen - first submit);
- submitted/s = jobs / (last submit answered - first submit);
- submit p50 / p99 / max: due time (or send time, unpaced) → the 202 response, every submit.

``--src DIR`` runs the server on the jobstream package in ``DIR`` (a ``src/`` folder) instead
of the installed one, and ``--baseline-src DIR`` adds runs on a second tree (e.g. the unmodified
``main``), alternated with the first within one invocation (``--repeat N`` pairs).

    .venv/bin/python benchmarks/job_throughput.py --jobs 20000 --rate 1000 --wait-quiet 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BenchServer,
    cpu_busy_seconds,
    cpu_plan,
    machine_info,
    process_cpu_seconds,
    set_affinity,
    wait_until_quiet,
)

BODY = b'{"kind":"noop","params":{}}'


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


# -- the load generator (its own process) ---------------------------------------------------


async def _submitter(
    conf: dict[str, Any],
    schedule: asyncio.Queue[float | None],
    latencies: list[float],
    last_id: list[bytes],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", conf["port"])
    request = (
        f"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{conf['port']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    try:
        while True:
            due = await schedule.get()
            if due is None:
                return
            start = time.perf_counter() if due == 0.0 else due
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != b"202":
                raise RuntimeError(f"submit answered {head!r} {body[:300]!r}")
            last_id[0] = body
    finally:
        writer.close()


async def generate(conf: dict[str, Any]) -> dict[str, Any]:
    jobs, rate, connections = conf["jobs"], conf["rate"], conf["connections"]
    schedule: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    last_body = [b""]
    lanes = [
        asyncio.create_task(_submitter(conf, schedule, latencies, last_body))
        for _ in range(connections)
    ]
    await asyncio.sleep(0.2)  # connected
    started = time.perf_counter()
    if rate <= 0:
        for _ in range(jobs):
            schedule.put_nowait(0.0)
    else:
        interval = 1.0 / rate
        for i in range(jobs):
            due = started + i * interval
            delay = due - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            schedule.put_nowait(due)
    for _ in lanes:
        schedule.put_nowait(None)
    await asyncio.gather(*lanes)
    submitted = time.perf_counter() - started
    latencies.sort()
    job_id = json.loads(last_body[0])["id"]
    return {
        "started": started,
        "submit_seconds": submitted,
        "submitted": len(latencies),
        "last_job": job_id,
        "p50_ms": 1000 * (_quantile(latencies, 0.50) or 0.0),
        "p99_ms": 1000 * (_quantile(latencies, 0.99) or 0.0),
        "max_ms": 1000 * latencies[-1],
    }


def generator_main(conf: dict[str, Any], pipe: Any) -> None:
    set_affinity(0, conf["cpus"])
    gc.freeze()
    try:
        import uvloop

        result = uvloop.run(generate(conf))
    except ImportError:
        result = asyncio.run(generate(conf))
    pipe.send(result)


# -- the orchestration -----------------------------------------------------------------------


def completed(server: BenchServer) -> int:
    import httpx

    body = httpx.get(f"{server.url}/metrics", timeout=30).text
    for line in body.splitlines():
        if line.startswith('jobstream_jobs{kind="noop",status="completed"}'):
            return int(float(line.rpartition(" ")[2]))
    return 0


def start_profiler(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    out.parent.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(py_spy), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
    cmd += ["--rate", "250", "--format", "raw", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_once(
    label: str, src: str | None, args: argparse.Namespace, store: str | None
) -> dict[str, Any]:
    env = {"JOBSTREAM_STORE_URL": store} if store else {}
    server = BenchServer(
        "jobstream", cpus=args.server_cpus, env=env, workers=args.concurrency, src=src
    )
    server.start()
    profiler: subprocess.Popen[bytes] | None = None
    try:
        quiet = wait_until_quiet(args.wait_quiet)
        conf = {
            "port": server.port,
            "jobs": args.jobs,
            "rate": args.rate,
            "connections": args.connections,
            "cpus": args.client_cpus,
        }
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=generator_main, args=(conf, child), daemon=True)
        cpu0 = (process_cpu_seconds(server.pid), cpu_busy_seconds(), time.perf_counter())
        proc.start()
        if args.profile:
            seconds = args.jobs / args.rate if args.rate > 0 else args.profile_seconds
            target = Path(args.profile) / f"{label}-{args.jobs}jobs-{args.rate:g}per_s.txt"
            profiler = start_profiler(server.pid, target, seconds)
        deadline = time.monotonic() + 600
        while not parent.poll(0.05):
            if not proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the load generator stopped without a result")
        result: dict[str, Any] = parent.recv()
        proc.join(timeout=10)
        while True:
            done = completed(server)
            now = time.perf_counter()
            if done >= args.jobs:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{done} of {args.jobs} completed\n{server.log_tail()}")
            time.sleep(0.05)
        cpu1 = (process_cpu_seconds(server.pid), cpu_busy_seconds(), time.perf_counter())
        if profiler is not None:
            profiler.wait(timeout=120)
    except BaseException:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.terminate()
        server.stop()
    took = now - result["started"]
    wall = cpu1[2] - cpu0[2]
    server_cpu = cpu1[0] - cpu0[0]
    return {
        "label": label,
        "store": "postgres" if store else "sqlite",
        "jobs": args.jobs,
        "jobs_per_s": round(args.jobs / took, 1),
        "submitted_per_s": round(result["submitted"] / result["submit_seconds"], 1),
        "seconds": round(took, 2),
        "p50_ms": round(result["p50_ms"], 2),
        "p99_ms": round(result["p99_ms"], 2),
        "max_ms": round(result["max_ms"], 1),
        "server_cpu": round(server_cpu / wall, 2),
        "other_cpu": round(max(cpu1[1] - cpu0[1] - server_cpu, 0.0) / wall, 2),
        "busy_cores_before": quiet["busy_cores_before"],
    }


COLUMNS = [
    ("label", "tree", 10),
    ("store", "store", 8),
    ("jobs_per_s", "jobs/s", 8),
    ("submitted_per_s", "submit/s", 9),
    ("p50_ms", "p50 ms", 8),
    ("p99_ms", "p99 ms", 8),
    ("max_ms", "max ms", 8),
    ("server_cpu", "srv cpu", 8),
    ("other_cpu", "other", 6),
    ("busy_cores_before", "before", 7),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="submits per second (0: as fast as answered)"
    )
    parser.add_argument("--connections", type=int, default=64, help="submit connections")
    parser.add_argument("--concurrency", type=int, default=4, help="the embedded pool's workers")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--src", metavar="DIR", help="the jobstream src/ to measure")
    parser.add_argument(
        "--baseline-src", metavar="DIR", help="a second src/ (e.g. main's), alternated with --src"
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each run, wait up to this many seconds for the rest of the machine to be "
        "quiet (< 0.3 cores busy)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and generator")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server (raw stacks in DIR)")
    parser.add_argument(
        "--profile-seconds", type=float, default=10.0, help="profile length when unpaced"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    args.server_cpus, args.client_cpus = cpu_plan(not args.no_pin)
    set_affinity(0, args.client_cpus)
    trees: list[tuple[str, str | None]] = [("change", args.src)]
    if args.baseline_src:
        trees.insert(0, ("baseline", args.baseline_src))
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    rows: list[dict[str, Any]] = []
    info = machine_info()
    if not args.json:
        pace = f"{args.rate:g}/s" if args.rate > 0 else "unpaced"
        print(
            f"# {info['cpu']} · {info['nproc']} cores · Python {info['python']} · "
            f"{args.jobs} no-op jobs, {pace}, {args.connections} connections, "
            f"{args.concurrency} workers"
        )
        print(" ".join(f"{title:>{width}}" for _, title, width in COLUMNS), flush=True)
    for store_name in stores:
        for _ in range(args.repeat):
            for label, src in trees:
                with contextlib.ExitStack() as stack:
                    url = None
                    if store_name == "postgres":
                        from celery_throughput import database

                        url = stack.enter_context(database())
                    row = run_once(label, src, args, url)
                rows.append(row)
                if not args.json:
                    print(
                        " ".join(f"{row[key]!s:>{width}}" for key, _, width in COLUMNS),
                        flush=True,
                    )
    if args.json:
        print(
            json.dumps({"machine": info, "args": vars(args), "runs": rows}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
