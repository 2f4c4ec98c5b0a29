"""``ExternalWorkers``: jobs of external kinds, claimed and reported over HTTP by workers that
jobstream did not write (a Node or BullMQ worker, a shell script).

A claim (``POST /api/v1/workers/claim``) takes the oldest queued job of the given kinds with the
store's ``claim``, as the embedded pool does, under a lease held by a worker id made for that
claim alone. Waiting claims are woken by a ``queued`` control message on the bus, which every
instance sees (a submit of an external kind, or the recovery of one, sends it), and look again
every second anyway.

The lease the worker gets is a random secret (192 bits). The store never sees it: the lease
holder it records is ``http-`` + a digest of the secret and the reporter's subject, so the
holder shown in the ``running`` event cannot be replayed as a lease, another reporter's token
cannot use a stolen one, and a lease is bound to one job and one attempt (a re-queued job's
next claim makes a new secret).

A report (``POST /api/v1/jobs/{id}/events``) first renews the lease (refused once it has ended,
even before a watcher recovered the job), then becomes an event through a ``JobReporter`` and
the instance's ``EventWriter``: the same numbering, fenced group commit, store-before-publish
and bus as an in-process handler's. The server assigns every seq. A reporter is kept per job on
each instance that serves its reports (for its ETA history); each report first brings it up to
the stored job, which another instance may have moved on, and a report racing one on another
instance gets ``Rebase`` from the fenced append and is renumbered after it.

Nothing here is durable: a claim waiting when the server stops answers 204; the reporters kept
are a cache of the stored jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal

from jobstream.bus.base import EventBus
from jobstream.models import EventType, Job, JobStatus, monotonic_us, utcnow
from jobstream.service import QUEUED_CONTROL, InvalidParams, JobConflict, JobNotFound
from jobstream.store.base import JobStore
from jobstream.worker.leases import status_event, terminal_event
from jobstream.worker.observer import NO_OBSERVER, JobObserver, waited_seconds
from jobstream.worker.pool import completed_data
from jobstream.worker.registry import Registry
from jobstream.worker.reporter import EventWriter, JobReporter

log = logging.getLogger(__name__)

ReportType = Literal["progress", "log", "completed", "failed", "heartbeat"]
LEASE_HOLDER_PREFIX = "http-"
CLAIM_POLL_SECONDS = 1.0
"""How often a waiting claim looks at the queue without being woken (the backstop)."""
MAX_REPORTERS = 10_000


class LeaseLost(JobConflict):
    """A report whose lease does not hold the job (409): it expired, was never this job's, or
    the job was taken over or ended. Nothing was written."""

    def __init__(self, message: str, job_status: JobStatus) -> None:
        super().__init__(message)
        self.job_status = job_status


@dataclass(slots=True)
class _Kept:
    holder: str
    reporter: JobReporter
    used: float


@dataclass(slots=True, eq=False)
class _Waiter:
    kinds: frozenset[str]
    wake: asyncio.Event


def lease_holder(sub: str, lease: str) -> str:
    """The store's lease holder for ``lease`` presented by ``sub``: a digest, not the secret."""
    digest = hashlib.sha256(f"{sub}\n{lease}".encode()).hexdigest()
    return f"{LEASE_HOLDER_PREFIX}{digest[:40]}"


class ExternalWorkers:
    def __init__(
        self,
        *,
        store: JobStore,
        bus: EventBus,
        registry: Registry,
        lease_seconds: float,
        observer: JobObserver | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self.lease_seconds = lease_seconds
        self.observer = observer or NO_OBSERVER
        self.writer = EventWriter(store, bus)
        self._waiters: set[_Waiter] = set()
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._closed = False
        self.writer.start()
        self.bus.on_control(self._on_control)

    def close_claims(self) -> None:
        """Answer every waiting claim now (204): the server is stopping."""
        self._closed = True
        for waiter in self._waiters:
            waiter.wake.set()

    async def stop(self) -> None:
        self.close_claims()
        await self.writer.stop()

    async def _on_control(self, message: dict[str, Any]) -> None:
        if message.get("type") != QUEUED_CONTROL:
            return
        kind = message.get("kind")
        for waiter in self._waiters:
            if kind in waiter.kinds:
                waiter.wake.set()

    # -- claims -------------------------------------------------------------------------------

    def check_kinds(self, kinds: Collection[str]) -> None:
        """``InvalidParams`` (422) naming each kind that is not external."""
        external = self.registry.external_names()
        errors = []
        for index, kind in enumerate(kinds):
            if self.registry.is_external(kind):
                continue
            why = "runs inside jobstream" if kind in self.registry else "is not a known kind"
            errors.append(
                {
                    "loc": ["body", "kinds", index],
                    "msg": (
                        f"kind {kind!r} {why}, not on external workers; external kinds: "
                        f"{', '.join(external) or 'none (set JOBSTREAM_EXTERNAL_KINDS)'}"
                    ),
                    "type": "value_error",
                }
            )
        if errors:
            raise InvalidParams(errors)

    async def claim(
        self,
        sub: str,
        kinds: Collection[str],
        wait: float,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> tuple[Job, str] | None:
        """The oldest queued job of ``kinds``, now running under a new lease (and the lease),
        waiting up to ``wait`` seconds for one; ``None`` if none came, or (``gone``) once the
        worker stopped waiting: a job is not handed to a connection nobody reads any more."""
        self.check_kinds(kinds)
        lease = secrets.token_urlsafe(24)
        holder = lease_holder(sub, lease)
        waiter = _Waiter(frozenset(kinds), asyncio.Event())
        self._waiters.add(waiter)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            while True:
                # Cleared before looking: a job queued while the store answers wakes us again.
                waiter.wake.clear()
                if gone is not None and await gone():
                    return None
                claimed = await self.store.claim(
                    sorted(kinds),
                    holder,
                    self.lease_seconds,
                    lambda job: status_event(job, JobStatus.RUNNING, worker=holder),
                )
                if claimed is not None:
                    job, event = claimed
                    await self.bus.publish([event])
                    if job.cancel_requested:  # cancelled while running before its re-queue
                        await self._end_cancelled(job)
                        continue
                    self.observer.started(job, waited_seconds(job))
                    self._keep(job.id, holder, self._reporter_for(job, holder))
                    return job, lease
                remaining = deadline - loop.time()
                if remaining <= 0 or self._closed:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        waiter.wake.wait(), timeout=min(remaining, CLAIM_POLL_SECONDS)
                    )
        finally:
            self._waiters.discard(waiter)

    async def _end_cancelled(self, job: Job) -> None:
        moved = await self.store.transition(
            job.id,
            {JobStatus.RUNNING},
            lambda current: terminal_event(current, EventType.CANCELLED, "Cancelled by user"),
        )
        if moved is not None:
            await self.bus.publish([moved[1]])

    # -- reports ------------------------------------------------------------------------------

    async def report(
        self, sub: str, job_id: str, lease: str, type_: ReportType, data: dict[str, Any]
    ) -> int:
        """Store one report of the job's worker (renewing its lease); the seq it got (for a
        heartbeat, the job's current seq). ``LeaseLost`` if the lease does not hold the job,
        ``JobNotFound`` if there is no such job."""
        holder = lease_holder(sub, lease)
        renewal = await self.store.renew_leases(
            [job_id], holder, self.lease_seconds, unexpired_at=monotonic_us()
        )
        if job_id in renewal.lost:
            self._forget(job_id, holder)
            raise await self._lost(job_id)
        reporter = await self._reporter(job_id, holder)
        unstalled = reporter.unstall() if job_id in renewal.unstalled else None
        if type_ == "heartbeat":
            if unstalled is not None:
                return await self._written(reporter, unstalled, holder)
            return reporter.job.seq  # caught up with the store: the job's latest event
        if type_ == "progress":
            report = {
                k: v
                for k, v in data.items()
                if v is not None or k not in ("progress", "eta_seconds")
            }
            event = reporter.report_progress(report)
        elif type_ == "log":
            event = reporter.log(data.get("level", "info"), data["message"], data.get("step"))
        else:
            return await self._finish(reporter, holder, type_, data)
        if event is None:  # another report of this job ended it meanwhile
            self._forget(job_id, holder)
            raise await self._lost(job_id)
        return await self._written(reporter, event, holder)

    async def _written(self, reporter: JobReporter, event: Any, holder: str) -> int:
        if not await reporter.written(event):
            self._forget(reporter.job.id, holder)
            raise await self._lost(reporter.job.id)
        seq: int = event.seq  # final: a rebase renumbers the event before storing it
        return seq

    async def _finish(
        self, reporter: JobReporter, holder: str, type_: ReportType, data: dict[str, Any]
    ) -> int:
        job = reporter.job
        started = job.started_at or utcnow()
        elapsed = max((utcnow() - started).total_seconds(), 0.0)
        if type_ == "completed":
            final = await reporter.finish(
                EventType.COMPLETED,
                completed_data(data.get("result"), output_path=None, elapsed_seconds=elapsed),
            )
        else:
            final = await reporter.finish(EventType.FAILED, {"message": data["message"]})
        self._forget(job.id, holder)
        if final is None:
            raise await self._lost(job.id)
        self.observer.finished(reporter.job, final, elapsed)
        return final.seq

    async def _lost(self, job_id: str) -> Exception:
        stored = await self.store.get(job_id)
        if stored is None:
            return JobNotFound(job_id)
        if stored.finished:
            ended = "was cancelled" if stored.status is JobStatus.CANCELLED else "has ended"
            message = (
                f"job {job_id!r} {ended} ({stored.status.value}): stop working on it; "
                "nothing was written"
            )
        else:
            message = (
                f"this lease does not hold job {job_id!r}: it expired (the job was or will be "
                "re-queued), was never this job's, or another worker holds the job now; stop "
                "working on it (nothing was written) and claim again"
            )
        return LeaseLost(message, stored.status)

    # -- the reporters kept on this instance --------------------------------------------------

    def _reporter_for(self, job: Job, holder: str) -> JobReporter:
        return JobReporter(job, self.writer, observer=self.observer, worker_id=holder)

    async def _reporter(self, job_id: str, holder: str) -> JobReporter:
        """The job's reporter on this instance, building on the stored job: a report restates
        the job's whole progress view, so it must not start from a view another instance has
        moved past (that instance's reports would be undone)."""
        stored = await self.store.get(job_id)
        if stored is None:
            raise JobNotFound(job_id)
        if stored.status is not JobStatus.RUNNING:
            raise await self._lost(job_id)
        kept = self._kept.get(job_id)
        usable = kept is not None and not (kept.reporter.lost or kept.reporter.finished)
        if kept is not None and usable and kept.holder == holder:
            kept.reporter.catch_up(stored)
            kept.used = time.monotonic()
            self._kept.move_to_end(job_id)
            return kept.reporter
        reporter = self._reporter_for(stored, holder)
        self._keep(job_id, holder, reporter)
        return reporter

    def _keep(self, job_id: str, holder: str, reporter: JobReporter) -> None:
        now = time.monotonic()
        self._kept[job_id] = _Kept(holder, reporter, now)
        self._kept.move_to_end(job_id)
        # Drop what no report used for two leases (its worker is gone), and past the bound.
        horizon = now - 2 * self.lease_seconds
        while self._kept:
            oldest = next(iter(self._kept.values()))
            if oldest.used >= horizon and len(self._kept) <= MAX_REPORTERS:
                break
            self._kept.popitem(last=False)

    def _forget(self, job_id: str, holder: str) -> None:
        kept = self._kept.get(job_id)
        if kept is not None and kept.holder == holder:
            del self._kept[job_id]

    @property
    def waiting_claims(self) -> int:
        return len(self._waiters)


__all__ = ["ExternalWorkers", "LeaseLost", "ReportType", "lease_holder"]
