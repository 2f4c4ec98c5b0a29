"""``jobstream worker`` in a subprocess, as an operator starts one beside the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from serverproc import ROOT, SECRET


class WorkerProcess:
    """``jobstream worker`` (``WORKER_ARGS`` then ``args``); ready when its log shows ``ready``."""

    WORKER_ARGS: tuple[str, ...] = ()
    START_SECONDS = 30.0
    NEW_SESSION = False
    """In a process group of its own (so a SIGKILL of the group takes pool children too)."""

    def __init__(self, data_dir: Path, env: dict[str, str], *args: str) -> None:
        self.data_dir = data_dir
        self.env = {
            "JOBSTREAM_JWT_SECRET": SECRET,
            "JOBSTREAM_DEMO_SPEED": "20",
            "JOBSTREAM_KINDS": "testkinds:register",
            **env,
        }
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"worker-{id(self)}.log"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jobstream",
            "worker",
            *self.WORKER_ARGS,
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]

    def start(self, ready: str = "running") -> WorkerProcess:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")])
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=self.NEW_SESSION,
            )
        deadline = time.monotonic() + self.START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if ready in self.log():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"worker did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
