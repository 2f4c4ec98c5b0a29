"""A PostgreSQL database of a test's own: created empty, dropped after (never a shared one).

The server comes from ``JOBSTREAM_TEST_POSTGRES_URL`` (default: the local server's ``postgres``
database, used only to run ``CREATE DATABASE``/``DROP DATABASE``). Unreachable PostgreSQL skips
the test, or fails it when ``CI=true``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from jobstream.store.sql import normalize_url
from services import env_url, require_service

ADMIN_URL = env_url(
    "JOBSTREAM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


@asynccontextmanager
async def postgres_database(prefix: str = "jobstream_t") -> AsyncIterator[str]:
    """Yield the URL of a new, empty database; drop it (and its connections) afterwards."""
    admin_url = normalize_url(ADMIN_URL)
    name = f"{prefix}_{secrets.token_hex(6)}"
    engine = create_async_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5}
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any connection problem means: no usable server
        await engine.dispose()
        require_service("PostgreSQL", f"cannot use {ADMIN_URL}: {type(exc).__name__}: {exc}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()


__all__ = ["ADMIN_URL", "postgres_database"]
