"""What the benchmarks share: a real server in a subprocess, CPU pinning, and the machine's story.

A benchmark server is started the way a user starts one (``python -m jobstream serve``, or the
baseline script), on 127.0.0.1 with auth ``none``, its own temporary data folder, one embedded
worker and the ``bench`` kind from ``benchmarks/kinds.py``. Every inherited ``JOBSTREAM_*``
variable is dropped first, so a developer's shell cannot change what is measured.

``asgi_server="granian"`` serves the same app (``create_app`` with its settings from the
environment, or the baseline script's ``create_baseline_app``) under granian instead of uvicorn:
one worker process below granian's supervisor, which is the process measured (``app_pid``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent

SERVER_ENV = {
    "JOBSTREAM_AUTH": "none",
    "JOBSTREAM_HOST": "127.0.0.1",
    "JOBSTREAM_KINDS": "kinds:register",
    "JOBSTREAM_DEMO_JOBS": "false",
    "JOBSTREAM_SUBMIT_RATE_PER_MINUTE": "0",
    "JOBSTREAM_MAX_STREAMS": "1000000",
    "JOBSTREAM_MAX_STREAMS_PER_USER": "1000000",
    "JOBSTREAM_STREAM_TIMEOUT_SECONDS": "3600",
    "JOBSTREAM_WS_MAX_CONNECTIONS": "1000000",
    "JOBSTREAM_WS_IDLE_TIMEOUT_SECONDS": "3600",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> int:
    """Raise this process's soft open-files limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1_048_576
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_plan(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, load-generator CPUs): one core each on a machine with at least two."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def set_affinity(pid: int, cpus: set[int] | None) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cpus)


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        loop = f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        loop = "asyncio"
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "client_loop": loop,
    }


def cpu_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle, from ``/proc/stat``."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    busy = sum(values[:8]) - idle  # guest time is already counted in user
    return busy / os.sysconf("SC_CLK_TCK")


def busy_cores(seconds: float = 2.0) -> float:
    """How many cores the machine kept busy over the next ``seconds`` (all processes)."""
    before = cpu_busy_seconds()
    time.sleep(seconds)
    return (cpu_busy_seconds() - before) / seconds


def wait_until_quiet(max_wait: float, threshold: float = 0.3) -> dict[str, float]:
    """Wait up to ``max_wait`` s until the rest of the machine keeps less than ``threshold``
    cores busy (sampled over 2 s while the benchmark itself is idle). The 1-minute load average
    lags by a minute and counts the benchmark's own previous run, so it is reported, not used."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = busy_cores()
        if busy < threshold or time.monotonic() >= deadline:
            return {"busy_cores_before": round(busy, 2), "load_before": os.getloadavg()[0]}


ASGI_SERVERS = ("uvicorn", "granian")

GRANIAN_TARGETS = {
    "jobstream": "jobstream.server.app:create_app",
    "baseline": "baseline_server:create_baseline_app",
}


class BenchServer:
    """A jobstream (``flavour="jobstream"``) or baseline (``"baseline"``) server subprocess,
    under uvicorn (``jobstream serve``, the baseline script) or granian."""

    def __init__(
        self,
        flavour: str,
        *,
        cpus: set[int] | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
        src: str | None = None,
        asgi_server: str = "uvicorn",
    ) -> None:
        if flavour not in {"jobstream", "baseline"}:
            raise ValueError(flavour)
        if asgi_server not in ASGI_SERVERS:
            raise ValueError(asgi_server)
        self.flavour = flavour
        self.asgi_server = asgi_server
        self.cpus = cpus
        self.workers = workers
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"jobstream-bench-{flavour}-"))
        self.data_dir = self.tmp / "data"
        self.log_path = self.tmp / "server.log"
        self.extra_env = env or {}
        self.src = src
        self.proc: subprocess.Popen[bytes] | None = None
        self._app_pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The process started (under granian: its supervisor)."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def app_pid(self) -> int:
        """The process that runs the app, whose CPU and memory are measured: the server itself
        under uvicorn, granian's one worker process under granian."""
        if self.asgi_server == "uvicorn":
            return self.pid
        if self._app_pid is None:
            import psutil

            children = psutil.Process(self.pid).children()
            if len(children) != 1:
                raise RuntimeError(f"granian runs {len(children)} worker processes, not 1")
            self._app_pid = children[0].pid
        return self._app_pid

    def command(self) -> list[str]:
        if self.asgi_server == "granian":
            # One worker; HTTP/1.1 only (what the clients speak); uvloop, as uvicorn uses; no
            # cap on concurrent requests (granian's default backpressure, backlog / workers =
            # 1,024, would hold every stream past the 1,024th unanswered).
            return [
                sys.executable,
                *("-m", "granian", "--interface", "asgi", "--factory"),
                *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
                *("--http", "1", "--loop", "uvloop", "--no-access-log"),
                *("--log-level", "warning", "--backlog", "4096", "--backpressure", "1000000"),
                GRANIAN_TARGETS[self.flavour],
            ]
        common = ["--port", str(self.port), "--data-dir", str(self.data_dir)]
        common += ["--workers", str(self.workers), "--log-level", "warning"]
        if self.flavour == "jobstream":
            return [sys.executable, "-m", "jobstream", "serve", *common]
        return [sys.executable, str(BENCH_DIR / "baseline_server.py"), *common]

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the server process (again, on the same port and data folder, after ``kill``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTREAM_")}
        env.update(SERVER_ENV)
        if self.asgi_server == "granian":  # no command line of ours: settings from the env
            env["JOBSTREAM_PORT"] = str(self.port)
            env["JOBSTREAM_DATA_DIR"] = str(self.data_dir)
            env["JOBSTREAM_WORKERS"] = str(self.workers)
        env.update(self.extra_env)
        # ``src``: a jobstream source tree to run instead of the installed package (to compare
        # a proposed change, or to pin a snapshot while the working tree is being edited).
        paths = [str(BENCH_DIR), self.src or "", env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._app_pid = None
        cpus = self.cpus
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
                # Pinned before it starts, so that processes it starts (granian's worker) are too.
                preexec_fn=(lambda: set_affinity(0, cpus)) if cpus else None,
            )
        set_affinity(self.proc.pid, self.cpus)
        return self.proc

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs. The data folder stays for a restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def start(self, timeout: float = 60.0) -> BenchServer:
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.flavour} server exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.flavour} server did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def submit(self, params: dict[str, Any], kind: str = "bench") -> dict[str, Any]:
        r = httpx.post(f"{self.url}/api/v1/jobs", json={"kind": kind, "params": params}, timeout=60)
        r.raise_for_status()
        job: dict[str, Any] = r.json()
        return job

    def submit_many(
        self, params: list[dict[str, Any]], kind: str = "bench", in_flight: int = 50
    ) -> list[dict[str, Any]]:
        """Submit one job per ``params``, ``in_flight`` requests at a time (a submit waits for
        its commit; concurrent ones share a group commit), in order."""
        import asyncio

        async def run() -> list[dict[str, Any]]:
            gate = asyncio.Semaphore(in_flight)
            async with httpx.AsyncClient(base_url=self.url, timeout=120) as client:

                async def one(p: dict[str, Any]) -> dict[str, Any]:
                    async with gate:
                        r = await client.post("/api/v1/jobs", json={"kind": kind, "params": p})
                        r.raise_for_status()
                        job: dict[str, Any] = r.json()
                        return job

                return list(await asyncio.gather(*(one(p) for p in params)))

        return asyncio.run(run())

    def job(self, job_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/api/v1/jobs/{job_id}", timeout=10)
        r.raise_for_status()
        job: dict[str, Any] = r.json()
        return job

    def wait_finished(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in {"completed", "failed", "cancelled"}:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(0.1)

    def metric(self, name: str) -> float:
        """The sum of every sample called ``name`` on ``/metrics`` (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            head, _, value = line.rpartition(" ")
            if head.partition("{")[0] == name:
                total += float(value)
        return total

    def metric_samples(self, *names: str) -> dict[str, dict[str, float]]:
        """Every sample of each of ``names`` (e.g. ``x_count``) on ``/metrics``: by name, then
        by label string."""
        text = httpx.get(f"{self.url}/metrics", timeout=60).text
        samples: dict[str, dict[str, float]] = {name: {} for name in names}
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            head, _, value = line.rpartition(" ")
            metric, _, labels = head.partition("{")
            if metric in samples:
                samples[metric][labels.rstrip("}")] = float(value)
        return samples

    def rss_bytes(self) -> int:
        """Resident memory of the process that runs the app (``app_pid``)."""
        import psutil

        return int(psutil.Process(self.app_pid).memory_info().rss)

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


ADMIN_URL = os.environ.get(
    "JOBSTREAM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
"""The local PostgreSQL server's maintenance database, where a run creates its own database."""


async def admin_sql(statement: str) -> None:
    """Run one statement outside a transaction on ``ADMIN_URL`` (``CREATE DATABASE`` and the
    like)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from jobstream.store.sql import normalize_url

    engine = create_async_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 once it is gone)."""
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)
