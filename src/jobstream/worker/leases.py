"""``LeaseWatcher``: what happens to a running job whose worker goes quiet.

A worker renews the leases of the jobs it runs every third of ``JOBSTREAM_LEASE_SECONDS``.
When a lease has gone unrenewed for half of it, the job's watchers are told (a ``progress``
event with ``state: "stalled"`` and a ``log`` warning saying since when); when it expires, the
job is recovered by its kind's ``on_interrupt`` policy (``status_change`` back to ``queued``, or
``failed`` with the reason; kinds nobody here knows, external ones included, are re-queued). A
worker that renews in time turns the state back itself (``JobReporter.unstall``).

Every server instance and every worker process runs a watcher; each announcement and each
recovery is one conditional write in the store (``announce_stalls``, ``transition``), so each
happens exactly once however many watchers see it at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jobstream.bus.base import EventBus
from jobstream.models import Event, EventType, Job, JobStatus, isoformat, monotonic_us
from jobstream.store.base import JobStore
from jobstream.worker.observer import NO_OBSERVER, JobObserver
from jobstream.worker.registry import Registry

log = logging.getLogger(__name__)

STALLED = "stalled"


def status_event(job: Job, new: JobStatus, **extra: Any) -> Event:
    return Event(
        job_id=job.id,
        owner=job.owner,
        seq=job.seq + 1,
        type=EventType.STATUS_CHANGE,
        data={"old_status": job.status.value, "new_status": new.value, **extra},
    )


def terminal_event(job: Job, type_: EventType, message: str) -> Event:
    return Event(
        job_id=job.id, owner=job.owner, seq=job.seq + 1, type=type_, data={"message": message}
    )


def stall_notice(now_us: int, lease_seconds: float) -> Callable[[Job], list[Event]]:
    """The two events that tell a job's watchers its worker went quiet."""
    quiet_since = datetime.fromtimestamp((now_us - lease_seconds * 1e6 / 2) / 1e6, UTC)
    recovery = datetime.fromtimestamp((now_us + lease_seconds * 1e6 / 2) / 1e6, UTC)

    def make(job: Job) -> list[Event]:
        progress = Event(
            job_id=job.id,
            owner=job.owner,
            seq=job.seq + 1,
            type=EventType.PROGRESS,
            data={
                "progress": job.progress,
                "current_step": job.current_step,
                "total_steps": job.total_steps,
                "step_name": job.step_name,
                "state": STALLED,
                "message": job.message,
                "eta_seconds": None,
            },
        )
        warning = Event(
            job_id=job.id,
            owner=job.owner,
            seq=job.seq + 2,
            type=EventType.LOG,
            data={
                "level": "warning",
                "message": (
                    f"No word from its worker since {isoformat(quiet_since)}; the job is "
                    f"recovered at {isoformat(recovery)} unless the worker answers"
                ),
                "step": job.current_step,
            },
        )
        return [progress, warning]

    return make


class LeaseWatcher:
    def __init__(
        self,
        *,
        store: JobStore,
        bus: EventBus,
        registry: Registry,
        lease_seconds: float,
        observer: JobObserver | None = None,
        on_recovered: Callable[[Job, Event], Any] | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self.lease_seconds = lease_seconds
        self.observer = observer or NO_OBSERVER
        self.on_recovered = on_recovered
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="jobstream-lease-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        period = max(self.lease_seconds / 6, 0.05)
        while True:
            await asyncio.sleep(period)
            try:
                await self.check(skip=set())
            except Exception:
                log.exception("watching leases failed; retrying")

    async def check(self, skip: set[str]) -> None:
        """Announce stalls and recover expired leases, once (``skip``: jobs this process runs,
        whose leases it is renewing)."""
        now = monotonic_us()
        for job, events in await self.store.announce_stalls(
            now, self.lease_seconds, stall_notice(now, self.lease_seconds)
        ):
            await self.bus.publish(events)
            log.warning("job %s stalled: its worker stopped renewing its lease", job.id)
        for job in await self.store.expired_leases(now):
            if job.id not in skip:
                await self.recover(job, "its worker stopped responding")

    def policy(self, kind: str) -> str:
        return self.registry.get(kind).on_interrupt if kind in self.registry else "requeue"

    async def recover(self, job: Job, reason: str) -> Event | None:
        """End a running job whose worker is gone: re-queue it or fail it, by its policy."""
        if self.policy(job.kind) == "requeue":

            def make(current: Job) -> Event:
                return status_event(current, JobStatus.QUEUED, reason=reason)

        else:

            def make(current: Job) -> Event:
                return terminal_event(current, EventType.FAILED, f"Interrupted: {reason}")

        moved = await self.store.transition(job.id, {JobStatus.RUNNING}, make)
        if moved is None:
            return None
        after, event = moved
        await self.bus.publish([event])
        if after.status is JobStatus.QUEUED and self.registry.is_external(after.kind):
            # Wake the external workers' claims waiting for this kind, on every instance.
            await self.bus.publish_control({"type": "queued", "kind": after.kind})
        self.observer.recovered(after, event)
        if self.on_recovered is not None:
            outcome = self.on_recovered(after, event)
            if asyncio.iscoroutine(outcome):
                await outcome
        return event


__all__ = ["STALLED", "LeaseWatcher", "stall_notice", "status_event", "terminal_event"]
