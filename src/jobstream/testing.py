"""Helpers for testing code that uses jobstream, without a server.

``run_jobs`` runs queued jobs to the end with the in-memory backends (or any given), like a
worker in burst mode: it returns when the queue is empty and nothing is running.

    registry = Registry()

    @registry.register("resize")
    async def resize(ctx, params): ...

    async with JobHarness(registry) as harness:
        job = await harness.submit("resize", {"width": 10})
        await harness.run_until_idle()
        assert (await harness.get(job.id)).status is JobStatus.COMPLETED
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from jobstream.bus import EventBus, MemoryBus, Subscriber
from jobstream.models import Event, Job, JobStatus
from jobstream.server.auth import LOCAL_USER, Principal
from jobstream.service import JobService
from jobstream.store import JobStore, MemoryStore
from jobstream.worker.pool import WorkerPool
from jobstream.worker.registry import Registry

__all__ = ["JobHarness"]


class JobHarness:
    """A store, a bus, a job service and a worker pool in one object, for tests."""

    def __init__(
        self,
        registry: Registry,
        *,
        store: JobStore | None = None,
        bus: EventBus | None = None,
        data_dir: Path | None = None,
        concurrency: int = 4,
        user: str = LOCAL_USER,
    ) -> None:
        self.registry = registry
        self.store = store or MemoryStore()
        self.bus = bus or MemoryBus()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="jobstream-test-")
            data_dir = Path(self._tmp.name)
        self.data_dir = data_dir
        self.pool = WorkerPool(
            store=self.store,
            bus=self.bus,
            registry=registry,
            data_dir=data_dir,
            concurrency=concurrency,
            poll_interval=0.05,
        )
        self.jobs = JobService(self.store, self.bus, registry, on_queued=self.pool.notify)
        self.principal = Principal(user, frozenset({"admin"}))
        self.events: list[Event] = []
        self._recorder = Subscriber(everything=True, soft_limit=10**9, hard_limit=10**9 + 1)

    async def __aenter__(self) -> JobHarness:
        await self.store.start()
        await self.bus.start()
        self.bus.subscribe(self._recorder)
        await self.pool.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.pool.stop()
        await self.bus.close()
        await self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def submit(self, kind: str, params: dict[str, Any] | None = None) -> Job:
        return await self.jobs.submit(self.principal, kind, params or {})

    async def get(self, job_id: str) -> Job:
        return await self.jobs.get(self.principal, job_id)

    async def cancel(self, job_id: str) -> Job:
        return await self.jobs.cancel(self.principal, job_id)

    async def run_until_idle(self, limit: float = 30.0) -> None:
        """Return once no job is queued or running (every event recorded in ``events``)."""
        async with asyncio.timeout(limit):
            while True:
                await asyncio.sleep(0.01)
                queued = await self.store.list_jobs(owner=None, status=JobStatus.QUEUED, limit=1)
                if not queued.items and self.pool.active == 0:
                    self.events.extend(self._recorder.drain())
                    return

    def events_of(self, job_id: str) -> list[Event]:
        return [e for e in self.events_of_all() if e.job_id == job_id]

    def events_of_all(self) -> list[Event]:
        """Every event published so far, in the order readers got them."""
        self.events.extend(self._recorder.drain())
        return list(self.events)
