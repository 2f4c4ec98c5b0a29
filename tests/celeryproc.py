"""Celery workers in subprocesses (``jobstream worker --celery`` or the ``celery`` command on a
user's app), each in a process group of its own so a SIGKILL takes its pool children too; and
a Celery queue of each test's own on the local RabbitMQ, deleted afterwards."""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from services import env_url, require_service
from workerproc import WorkerProcess

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


class CeleryWorker(WorkerProcess):
    """A Celery worker process: ``jobstream worker --celery`` (``command=None``) or any
    command line (``python -m celery -A app worker …``)."""

    WORKER_ARGS = ("--celery",)
    START_SECONDS = 60.0
    NEW_SESSION = True

    def __init__(
        self, data_dir: Path, env: dict[str, str], *args: str, command: list[str] | None = None
    ) -> None:
        super().__init__(
            data_dir,
            {
                "JOBSTREAM_CELERY_BROKER_URL": BROKER_URL,
                "JOBSTREAM_DATA_DIR": str(data_dir),
                **env,
            },
            *args,
        )
        self._command = command
        self.log_path = data_dir / f"celery-{id(self)}.log"

    def command(self) -> list[str]:
        return self._command or super().command()

    def start(self, ready: str = " ready.") -> CeleryWorker:
        super().start(ready)
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        return super().stop(timeout)

    def kill(self) -> None:
        """SIGKILL the worker and every process of its group (prefork children)."""
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


__all__ = ["BROKER_URL", "CeleryWorker", "celery_queue"]
