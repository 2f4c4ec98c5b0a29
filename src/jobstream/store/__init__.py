"""Job stores, chosen by URL: ``sqlite+aiosqlite:///path`` (default), ``postgresql+asyncpg://…``,
or ``memory://``. SQL stores import lazily so that their drivers stay optional."""

from __future__ import annotations

from jobstream.extras import require_driver
from jobstream.store.base import JobPage, JobStore, StaleJob
from jobstream.store.memory import MemoryStore

__all__ = ["JobPage", "JobStore", "MemoryStore", "StaleJob", "create_store"]


def create_store(url: str | JobStore) -> JobStore:
    if isinstance(url, JobStore):
        return url
    require_driver(url, "store")
    if url.startswith("memory://"):
        return MemoryStore()
    from jobstream.store.sql import SQLStore

    return SQLStore(url)
