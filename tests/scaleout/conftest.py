"""What the scale-out tests share: a PostgreSQL database and a Redis key prefix of each test's
own (removed after), and ``jobstream worker`` processes killed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from pgdb import postgres_database
from redisdb import redis_prefix
from workerproc import WorkerProcess


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with postgres_database() as url:
        yield url


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with redis_prefix() as value:
        yield value


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """``workers(env, *args)`` starts a ``jobstream worker`` on the test's shared data folder."""
    started: list[WorkerProcess] = []

    def make(env: dict[str, str], *args: str) -> WorkerProcess:
        worker = WorkerProcess(tmp_path / "shared", env, *args)
        started.append(worker)
        return worker.start()

    yield make
    for worker in started:
        worker.kill()
