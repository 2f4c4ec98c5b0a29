"""Store fixtures: one ``store`` per backend (memory, SQLite file, PostgreSQL).

Each PostgreSQL test gets a database of its own (``pgdb.postgres_database``: created empty,
dropped after), so tests, and test runs side by side, never share tables. Unreachable
PostgreSQL skips its tests, or fails them when ``CI=true``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from jobstream.store.base import JobStore
from jobstream.store.memory import MemoryStore
from jobstream.store.sql import SQLStore

# ``tests/`` holds helpers shared by every test folder (no package, no root conftest needed).
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from pgdb import postgres_database  # noqa: E402

StoreFactory = Callable[[], Awaitable[JobStore]]


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with postgres_database() as url:
        yield url


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The backend's URL (``memory://`` for the memory store), with clean tables."""
    name: str = request.param
    if name == "memory":
        yield "memory://"
    elif name == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'jobs.db'}"
    else:
        async with postgres_database() as url:
            yield url


@pytest.fixture
async def store_factory(backend: str) -> AsyncIterator[StoreFactory | None]:
    """More stores on the same database, each with its own engine (``None`` for memory)."""
    opened: list[JobStore] = []

    async def make() -> JobStore:
        store = SQLStore(backend)
        await store.start()
        opened.append(store)
        return store

    yield None if backend == "memory://" else make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(backend: str) -> AsyncIterator[JobStore]:
    instance: JobStore = MemoryStore() if backend == "memory://" else SQLStore(backend)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()
