"""A real jobstream server in a subprocess on 127.0.0.1, as a user would start it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

SECRET = "test-secret-for-jobstream-tests-only"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token(sub: str, roles: list[str] | None = None, ttl: int = 3600, secret: str = SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "roles": roles or [], "iat": now, "exp": now + ttl}, secret)


def bearer(sub: str, roles: list[str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, roles)}"}


class ServerProcess:
    """``jobstream serve`` in a subprocess. With ``default_data_dir`` it starts the way the
    README does: in the working directory ``data_dir``, without ``--data-dir``, so the data lands
    in the relative default ``./.jobstream`` (``self.data_dir`` then points at it)."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
        *,
        default_data_dir: bool = False,
        python_path: list[str] | None = None,
        args: list[str] | None = None,
    ):
        self.cwd = data_dir
        self.default_data_dir = default_data_dir
        self.data_dir = data_dir / ".jobstream" if default_data_dir else data_dir
        self.python_path = python_path or []
        self.args = args or []
        """More ``jobstream serve`` arguments (after the defaults, so they win)."""
        self.port = port or free_port()
        self.env = {
            "JOBSTREAM_AUTH": "jwt",
            "JOBSTREAM_JWT_SECRET": SECRET,
            "JOBSTREAM_DEMO_SPEED": "20",
            "JOBSTREAM_KINDS": "testkinds:register",
            "JOBSTREAM_SUBMIT_RATE_PER_MINUTE": "0",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"
        if default_data_dir:
            self.env.pop("JOBSTREAM_DATA_DIR", None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {**os.environ, **self.env}
        if self.default_data_dir:
            env.pop("JOBSTREAM_DATA_DIR", None)
        env["PYTHONPATH"] = os.pathsep.join(
            [*self.python_path, str(ROOT / "tests"), env.get("PYTHONPATH", "")]
        )
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = self._spawn(env, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start within {timeout}s:\n{self.log()}")

    def _spawn(self, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
        data_dir = [] if self.default_data_dir else ["--data-dir", str(self.data_dir)]
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobstream",
                "serve",
                "--port",
                str(self.port),
                *data_dir,
                "--log-level",
                "warning",
                *self.args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def rss_bytes(self) -> int:
        import psutil

        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def metric(self, name: str, labels: dict[str, Any] | None = None) -> float:
        """The value of one Prometheus sample from ``/metrics`` (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        want = ",".join(f'{k}="{v}"' for k, v in (labels or {}).items())
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            sample, _, lbl = head.partition("{")
            if sample == name and lbl.rstrip("}") == want:
                return float(value)
        return 0.0


def finished_job(client: httpx.Client, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The job once it is completed, failed or cancelled (polled through ``client``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")
