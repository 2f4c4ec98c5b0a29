"""Store fixtures: one ``store`` per backend (memory, SQLite file, PostgreSQL).

PostgreSQL comes from ``JOBSTREAM_TEST_POSTGRES_URL`` (default: the local test server). Each test
starts from empty tables: the jobstream tables are dropped before and after it (tests run
serially). Unreachable PostgreSQL skips its tests, or fails them when ``CI=true``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from jobstream.store.base import JobStore
from jobstream.store.memory import MemoryStore
from jobstream.store.sql import SQLStore, metadata, normalize_url

# ``tests/`` holds helpers shared by every test folder (no package, no root conftest needed).
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from services import env_url, require_service  # noqa: E402

POSTGRES_URL = env_url(
    "JOBSTREAM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)

StoreFactory = Callable[[], Awaitable[JobStore]]


async def reset_postgres(url: str = POSTGRES_URL) -> None:
    """Drop the jobstream tables; skip (or fail in CI) when the server cannot be reached."""
    engine = create_async_engine(normalize_url(url), connect_args={"timeout": 5})
    failure: str | None = None
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all, checkfirst=True)
    except Exception as exc:  # any connection problem means: no usable server
        failure = f"cannot use {url}: {type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()
    if failure is not None:
        require_service("PostgreSQL", failure)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    await reset_postgres()
    yield POSTGRES_URL
    await reset_postgres()


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
        await reset_postgres()
        yield POSTGRES_URL
        await reset_postgres()


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
