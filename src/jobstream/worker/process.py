"""``jobstream worker``: the registered kinds, run from the store's queue, without HTTP.

The same ``WorkerPool`` as the embedded one (leases, cancel through the bus, stall notices and
recovery of expired leases, graceful shutdown), on the store and bus the settings name
(``JOBSTREAM_STORE_URL``, ``JOBSTREAM_BUS_URL``), writing artifacts to the data folder
(``JOBSTREAM_DATA_DIR``, on storage every instance reads, so a file downloads from any of them).
SIGTERM or SIGINT stops claiming and interrupts what runs (re-queued or failed by each kind's
policy), then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Collection

from jobstream.bus import create_bus
from jobstream.server.collector import settle as settle_garbage_collector
from jobstream.server.logs import JobLog
from jobstream.server.runtime import default_registry
from jobstream.settings import Settings
from jobstream.store import create_store
from jobstream.worker.pool import WorkerPool
from jobstream.worker.registry import Registry

log = logging.getLogger("jobstream.worker")


async def run_worker(
    settings: Settings,
    *,
    kinds: Collection[str] | None = None,
    registry: Registry | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a worker until ``stop`` is set (or SIGTERM/SIGINT), then shut it down cleanly."""
    registry = registry or default_registry(settings)
    if kinds is not None:
        unknown = sorted(set(kinds) - set(registry.names()))
        if unknown:
            raise ValueError(
                f"unknown job kinds {', '.join(unknown)}; known: {', '.join(registry.names())}"
            )
    store = create_store(settings.resolved_store_url)
    store.max_events_per_job = settings.max_events_per_job
    store.initial_credits = settings.initial_credits
    bus = create_bus(settings.bus_url, prefix=settings.redis_prefix, events=False)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await store.start()
    try:
        await bus.start()
        try:
            pool = WorkerPool(
                store=store,
                bus=bus,
                registry=registry,
                data_dir=settings.data_dir,
                concurrency=max(settings.workers, 1),
                kinds=kinds,
                lease_seconds=settings.lease_seconds,
                shutdown_grace=settings.shutdown_grace_seconds,
                observer=JobLog(settings.log_progress_seconds),
                # Without a network bus, other processes' cancels come only through the store.
                cancel_poll_seconds=0.5 if settings.bus_url.startswith("memory://") else None,
            )
            await pool.start()
            settle_garbage_collector()
            log.info(
                "worker %s running %s (concurrency %d)",
                pool.worker_id,
                ", ".join(kinds or registry.names()),
                pool.concurrency,
            )
            await stop.wait()
            log.info("worker %s stopping", pool.worker_id)
            await pool.stop()
        finally:
            await bus.close()
    finally:
        await store.close()


__all__ = ["run_worker"]
