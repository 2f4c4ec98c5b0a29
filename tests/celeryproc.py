"""Celery workers in subprocesses (``jobstream worker --celery`` or the ``celery`` command on a
user's app), each in a process group of its own so a SIGKILL takes its pool children too; and
a Celery queue of each test's own on the local RabbitMQ, deleted afterwards."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from serverproc import ROOT, SECRET
from services import env_url, require_service

BROKER_URL = env_url("JOBSTREAM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@contextmanager
def celery_queue() -> Iterator[str]:
    """A queue name of the test's own; the queue is deleted from the broker afterwards."""
    from kombu import Connection

    name = f"jobstream-test-{secrets.token_hex(5)}"
    try:
        with Connection(BROKER_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        require_service("RabbitMQ", f"cannot reach {BROKER_URL}: {type(exc).__name__}: {exc}")
    try:
        yield name
    finally:
        with Connection(BROKER_URL, connect_timeout=3) as conn, suppress(Exception):
            conn.channel().queue_delete(name)  # (never declared: nothing to delete)


class CeleryWorker:
    """A Celery worker process: ``jobstream worker --celery`` (``command=None``) or any
    command line (``python -m celery -A app worker …``)."""

    def __init__(
        self, data_dir: Path, env: dict[str, str], *args: str, command: list[str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.env = {
            "JOBSTREAM_JWT_SECRET": SECRET,
            "JOBSTREAM_DEMO_SPEED": "20",
            "JOBSTREAM_KINDS": "testkinds:register",
            "JOBSTREAM_CELERY_BROKER_URL": BROKER_URL,
            "JOBSTREAM_DATA_DIR": str(data_dir),
            **env,
        }
        self.command = command or [
            sys.executable,
            "-m",
            "jobstream",
            "worker",
            "--celery",
            "--data-dir",
            str(data_dir),
            *args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"celery-{id(self)}.log"

    def start(self, ready: str = " ready.") -> CeleryWorker:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")])
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if ready in self.log():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"Celery worker did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the worker and every process of its group (prefork children)."""
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


__all__ = ["BROKER_URL", "CeleryWorker", "celery_queue"]
