"""``Runtime``: the parts of one jobstream server (store, bus, stream hub, workers, auth) and
their lifecycle.

``build_runtime`` makes the parts without starting anything. ``Runtime.running()`` starts them
in order and stops them in reverse: streams first, so every open stream gets its clean close
before the workers re-queue what they were running, then the bus and the store. The app's
lifespan is exactly ``runtime.running()``; an application that mounts jobstream inside its own
app runs it from its lifespan with ``jobstream.lifespan(progress_app)``.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobstream.bus import EventBus, create_bus
from jobstream.limits import Limits, MemoryLimits, create_limits
from jobstream.models import Event, EventType, Job, JobStatus
from jobstream.server.auth import Authenticator
from jobstream.server.collector import PauseMetric
from jobstream.server.collector import settle as settle_garbage_collector
from jobstream.server.logs import JobLog
from jobstream.server.metrics import JobMetrics, Metrics
from jobstream.service import JobService
from jobstream.settings import Settings
from jobstream.store import JobStore, create_store
from jobstream.store.memory import MemoryStore
from jobstream.streams.lifecycle import StreamHub
from jobstream.worker.external import ExternalWorkers
from jobstream.worker.leases import LeaseWatcher
from jobstream.worker.observer import Observers
from jobstream.worker.pool import WorkerPool
from jobstream.worker.registry import Registry

if TYPE_CHECKING:
    from jobstream.celery import CeleryDispatcher


@dataclass(slots=True)
class Runtime:
    settings: Settings
    store: JobStore
    bus: EventBus
    registry: Registry
    auth: Authenticator
    metrics: Metrics
    hub: StreamHub
    jobs: JobService
    pool: WorkerPool | None
    watcher: LeaseWatcher | None
    """Stall notices and recovery of expired leases, when there is no pool (which has its own)."""
    gc_pauses: PauseMetric
    external: ExternalWorkers
    """Claims and reports of the workers outside jobstream that run the external kinds."""
    limits: Limits = field(default_factory=MemoryLimits)
    """Stream tickets, submit rate and stream caps: shared through Redis with a Redis bus."""
    extras: dict[str, Any] = field(default_factory=dict)
    started: bool = False

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start every part, yield, and stop them all (in reverse) however the body ends."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.start()
        try:
            await self.bus.start()
            try:
                await self.limits.start()
                await self.hub.start()
                self.external.start()
                if self.pool is not None:
                    await self.pool.start()
                if self.watcher is not None:
                    self.watcher.start()
                settle_garbage_collector()
                self.gc_pauses.install()
                self.started = True
                try:
                    yield
                finally:
                    self.started = False
                    self.gc_pauses.close()
                    self.external.close_claims()
                    await self.hub.shutdown()
                    if self.watcher is not None:
                        await self.watcher.stop()
                    if self.pool is not None:
                        await self.pool.stop()
                    await self.external.stop()
            finally:
                await self.limits.close()
                await self.bus.close()
        finally:
            await self.store.close()


def build_runtime(
    settings: Settings,
    *,
    registry: Registry | None = None,
    store: JobStore | str | None = None,
    bus: EventBus | str | None = None,
) -> Runtime:
    """The parts, made from ``settings`` (an instance or URL given here wins), not started."""
    if registry is None:
        registry = default_registry(settings)
    declare_external_kinds(registry, settings.external_kinds)
    store_ = create_store(store if store is not None else settings.resolved_store_url)
    store_.max_events_per_job = settings.max_events_per_job
    store_.initial_credits = settings.initial_credits
    bus_ = create_bus(bus if bus is not None else settings.bus_url, prefix=settings.redis_prefix)
    if not isinstance(store_, MemoryStore):
        bus_.attach_store(store_)  # a shared store: a network bus fills its gaps from it
    metrics = Metrics()
    limits = (
        create_limits(bus if bus is not None else settings.bus_url, settings.redis_prefix)
        if not isinstance(bus, EventBus)
        else MemoryLimits()
    )
    observer = Observers([JobMetrics(metrics), JobLog(settings.log_progress_seconds)])
    pool: WorkerPool | None = None
    dispatcher = None
    if settings.celery_broker_url:
        # Jobs run on Celery workers (``jobstream worker --celery``), not in this server.
        from jobstream.celery import CeleryDispatcher, celery_app

        dispatcher = CeleryDispatcher(celery_app(settings), settings.celery_queue, registry)
    elif settings.workers > 0:
        pool = WorkerPool(
            store=store_,
            bus=bus_,
            registry=registry,
            data_dir=settings.data_dir,
            concurrency=settings.workers,
            lease_seconds=settings.lease_seconds,
            # A SQLite file belongs to this server: what ran when it stopped is recovered now.
            recover_all_on_start=settings.embedded_store,
            shutdown_grace=settings.shutdown_grace_seconds,
            observer=observer,
        )
    jobs = JobService(
        store_,
        bus_,
        registry,
        on_queued=pool.notify if pool is not None else None,
        submit_rate_per_minute=settings.submit_rate_per_minute,
        observer=observer,
        limits=limits,
        dispatch=dispatcher.send if dispatcher is not None else None,
        revoke=dispatcher.revoke if dispatcher is not None else None,
    )
    return Runtime(
        settings=settings,
        store=store_,
        bus=bus_,
        registry=registry,
        auth=Authenticator(settings),
        metrics=metrics,
        hub=StreamHub(settings, store_, bus_, metrics, limits),
        jobs=jobs,
        pool=pool,
        watcher=None
        if pool is not None
        else LeaseWatcher(
            store=store_,
            bus=bus_,
            registry=registry,
            lease_seconds=settings.lease_seconds,
            observer=observer,
            on_recovered=_requeue_to(dispatcher) if dispatcher is not None else None,
        ),
        extras={"celery": dispatcher} if dispatcher is not None else {},
        gc_pauses=PauseMetric(metrics.gc_pauses),
        external=ExternalWorkers(
            store=store_,
            bus=bus_,
            registry=registry,
            lease_seconds=settings.lease_seconds,
            observer=observer,
        ),
        limits=limits,
    )


def _requeue_to(dispatcher: CeleryDispatcher) -> Callable[[Job, Event], Awaitable[None]]:
    """A recovered job back in the queue is sent to Celery again (by whoever recovered it)."""

    async def requeued(job: Job, event: Event) -> None:
        if event.type is EventType.STATUS_CHANGE and job.status is JobStatus.QUEUED:
            await dispatcher.requeued(job)

    return requeued


def declare_external_kinds(registry: Registry, names: Iterable[str]) -> None:
    """Add each of ``names`` (``JOBSTREAM_EXTERNAL_KINDS``) to ``registry`` as an external kind,
    unless it is one already; a kind registered with a handler here cannot also be external."""
    for name in names:
        if registry.is_external(name):
            continue
        if name in registry:
            raise ValueError(
                f"JOBSTREAM_EXTERNAL_KINDS names {name!r}, a kind that runs inside jobstream; "
                "an external kind has no handler here"
            )
        registry.add_external(name)


def default_registry(settings: Settings) -> Registry:
    """The demo kinds (unless ``JOBSTREAM_DEMO_JOBS=0``) and those of ``JOBSTREAM_KINDS``."""
    registry = Registry()
    if settings.demo_jobs:
        from jobstream.jobs import register_demo_kinds

        register_demo_kinds(registry, speed=settings.demo_speed)
    for path in settings.kinds:
        load_registrar(path)(registry)
    return registry


def load_registrar(path: str) -> Callable[[Registry], Any]:
    """``"package.module:function"`` -> the function (which registers kinds on a registry)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"JOBSTREAM_KINDS entries look like 'module:function', not {path!r}")
    module = importlib.import_module(module_name)
    registrar = getattr(module, attr, None)
    if not callable(registrar):
        raise ValueError(f"{path!r} is not a function of {module_name}")
    return registrar  # type: ignore[no-any-return]


__all__ = [
    "Runtime",
    "build_runtime",
    "declare_external_kinds",
    "default_registry",
    "load_registrar",
]
