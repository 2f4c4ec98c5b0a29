"""Running jobs' events: ``JobReporter`` (one per job, its single event writer) and
``EventWriter`` (one per worker process, the group commit that stores and publishes them).

A report becomes an event with the job's next ``seq`` at once and is folded into the reporter's
snapshot; the reporter hands it to the writer. The writer takes what every running job has
pending and stores it in one transaction (``JobStore.append_many``), then publishes everything
that transaction stored, in position order. While one transaction is in flight the next batch
gathers, so the store sees a few transactions per second per process however many jobs report
and however fast, and a report reaches readers one commit after it was made (about a
millisecond on SQLite).

Stored before published: a reader never sees an event the store does not have, so a seq it saw
means the same event after any crash, and whoever sees ``completed`` can fetch the finished job
and its result. A batch the store refuses (the job is no longer this worker's: its lease expired
and it was recovered or taken over) ends the reporter: it writes nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

from jobstream.bus.base import EventBus
from jobstream.eta import EtaEstimator, StepProfile
from jobstream.models import Artifact, Event, EventType, Job, JobStatus
from jobstream.store.base import Append, JobStore, Rebase
from jobstream.worker.observer import JobObserver, StepClock

log = logging.getLogger(__name__)

_PROGRESS_FIELDS = ("progress", "current_step", "total_steps", "step_name", "state", "message")
RETRY_SECONDS = 0.5
STALLED = "stalled"
"""The state a stall notice gives a job whose worker stopped renewing its lease."""
"""How long the writer waits before trying an unreachable store again."""


class EventWriter:
    """Group commit for every job a worker process runs: store what is pending in one
    transaction, then publish what it stored. One batch is in flight at a time, so events are
    published in the order they were stored.

    Driven by callbacks, not a task: a report starts a commit in the same loop turn when none
    is in flight, and the commit's completion publishes at once, so a report reaches its
    streams two loop turns after it was made (a task awaiting the store took four; under load
    each turn is a round of every stream's sends: docs/benchmarks.md). After a commit, the
    next one waits for the next loop turn: what the rest of the turn reports (a thousand jobs'
    timers firing together) goes in one transaction, not one each."""

    def __init__(self, store: JobStore, bus: EventBus, worker_id: str | None = None) -> None:
        self._store = store
        self._bus = bus
        self.worker_id = worker_id
        self._dirty: dict[JobReporter, None] = {}
        self._in_flight: tuple[list[JobReporter], list[Append]] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._retry: asyncio.Handle | None = None
        """The next ``_begin``, when one is scheduled (after a retry delay, or next turn)."""
        self._running = False
        self.transactions = 0
        """Store transactions so far (for tests and benchmarks: the write amplification)."""

    def start(self) -> None:
        self._running = True

    async def stop(self, grace: float = 5.0) -> None:
        """Store and publish what is pending (for at most ``grace`` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        self._running = False
        if self._retry is not None:
            self._retry.cancel()

    def mark(self, reporter: JobReporter) -> None:
        """``reporter`` has events to store."""
        self._dirty[reporter] = None
        if self._in_flight is None and self._retry is None:
            self._begin()

    def _begin(self) -> None:
        self._retry = None
        if not self._dirty:
            self._idle.set()
            return
        self._idle.clear()
        reporters = list(self._dirty)
        self._dirty.clear()
        batches = [reporter.take() for reporter in reporters]
        self._in_flight = (reporters, batches)
        soon = getattr(self._store, "append_many_soon", None)
        if soon is not None:  # a SQLite file: inline, or on its writer's thread
            soon(batches, self._done)
        else:
            task = asyncio.ensure_future(self._store.append_many(batches))
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[list[bool | Rebase]]) -> None:
        error = task.exception()
        self._done(None if error is not None else task.result(), error)

    def _done(self, stored: list[bool | Rebase] | None, error: BaseException | None) -> None:
        assert self._in_flight is not None
        reporters, batches = self._in_flight
        self._in_flight = None
        if stored is None:
            # The store is unreachable for now: keep every batch, in order, and try again.
            log.error(
                "storing the events of %d running jobs failed; retrying",
                len(batches),
                exc_info=error,
            )
            for reporter, batch in zip(reporters, batches, strict=True):
                reporter.put_back(batch)
            self._dirty = {**dict.fromkeys(reporters), **self._dirty}
            self._retry = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._begin)
            return
        self.transactions += 1
        published: list[Event] = []
        for reporter, batch, ok in zip(reporters, batches, stored, strict=True):
            if isinstance(ok, Rebase):
                reporter.rebase(batch, ok.seq, self._store)
            elif ok:
                published.extend(batch.events)
            else:
                reporter.refused()
        if published:
            published.sort(key=lambda event: event.pos or 0)
            self._bus.publish_soon(published)
        for reporter, batch, ok in zip(reporters, batches, stored, strict=True):
            if ok is True:
                reporter.stored(batch)
        # The next batch in the next loop turn, even if nothing is pending yet: a commit that
        # completed inline would otherwise let every report made later in this turn start a
        # transaction of its own (one per report under load); deferred, they share one.
        self._retry = asyncio.get_running_loop().call_soon(self._begin)


class JobReporter:
    """The single writer of a running job's events; ``finish`` ends it."""

    def __init__(
        self,
        job: Job,
        writer: EventWriter,
        *,
        observer: JobObserver | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.job = job
        self._writer = writer
        self._worker_id = worker_id
        """The lease holder that fences this job's batches (default: the writer's worker)."""
        self._pending: list[Event] = []
        self._waiters: list[tuple[Event, asyncio.Future[bool]]] = []
        self._rebasing = False
        self._rebase_task: asyncio.Future[None] | None = None
        self._state_before_stall: str | None = None
        self._eta = EtaEstimator()
        self._steps = StepClock(job, observer)
        self.finished = False
        self.lost = False
        self.started = time.monotonic()

    def learn(self, history: list[list[float]]) -> None:
        """Earlier runs' step durations (``JobStore.step_history``): the ETA starts from them."""
        self._eta.learn(StepProfile.from_history(history))

    def step_durations(self) -> list[float]:
        """How long each step of this run took (one figure, the whole run, for a job that
        reported no steps): what ``JobStore.record_steps`` keeps once it completed."""
        return self._steps.durations or [round(time.monotonic() - self.started, 3)]

    # -- reports (loop thread, synchronous) ---------------------------------------------------

    def report_progress(self, report: dict[str, Any], immediate: bool = False) -> Event | None:
        """A progress event restating the job's whole progress view with ``report`` applied
        (its ``eta_seconds``, if given, instead of the server's estimate); ``None`` once the
        job is finished."""
        if self.finished:
            return None
        job = self.job
        data: dict[str, Any] = {
            "progress": job.progress,
            "current_step": job.current_step,
            "total_steps": job.total_steps,
            "step_name": job.step_name,
            "state": job.state or job.status.value,
            "message": job.message,
        }
        data.update({k: v for k, v in report.items() if k in _PROGRESS_FIELDS})
        if "progress" in report:
            data["eta_seconds"] = self._eta.update(
                float(report["progress"]), data["current_step"], data["total_steps"]
            )
        else:
            data["eta_seconds"] = job.eta_seconds
        if report.get("eta_seconds") is not None:
            data["eta_seconds"] = report["eta_seconds"]
        return self._emit(EventType.PROGRESS, data)

    def log(self, level: str, message: str, step: int | None) -> Event | None:
        if self.finished:
            return None
        return self._emit(
            EventType.LOG,
            {
                "level": level,
                "message": message,
                "step": step if step is not None else self.job.current_step,
            },
        )

    def set_artifact(self, path: str, media_type: str, filename: str) -> None:
        """Declare the output file (``path`` relative to the data folder); stored with the
        job's next events."""
        self.job = replace(self.job, artifact=Artifact(path, media_type, filename))

    def _emit(self, type_: EventType, data: dict[str, Any]) -> Event:
        job = self.job
        event = Event(job_id=job.id, owner=job.owner, seq=job.seq + 1, type=type_, data=data)
        self.job = job.apply(event)
        self._steps.saw(self.job, event)
        if not self.lost:  # a job taken over elsewhere: nothing more is written
            self._pending.append(event)
            if not self._rebasing:
                self._writer.mark(self)
        if self.job.state != STALLED:
            self._state_before_stall = self.job.state
        return event

    # -- the writer's side --------------------------------------------------------------------

    def take(self) -> Append:
        """Everything pending, with the snapshot after it."""
        events, self._pending = self._pending, []
        return Append(self.job, events, self._worker_id or self._writer.worker_id)

    def put_back(self, batch: Append) -> None:
        """The store failed: the batch goes first again (the snapshot is newer, and covers it)."""
        self._pending = [*batch.events, *self._pending]

    def stored(self, batch: Append) -> None:
        self._settle()

    def refused(self) -> None:
        if not self.lost:
            self.lost = True
            log.warning("job %s was taken over while running here; its reports stop", self.job.id)
        self._pending = []
        self._settle()

    def rebase(self, batch: Append, stored_seq: int, store: JobStore) -> None:
        """The job is still ours but others appended to it (a stall notice): renumber what is
        pending after the stored events, on top of the stored job, and send it again."""
        self._pending = [*batch.events, *self._pending]
        if not self._rebasing:
            self._rebasing = True
            self._rebase_task = asyncio.ensure_future(self._rebase(store))

    async def _rebase(self, store: JobStore) -> None:
        while True:
            try:
                stored = await store.get(self.job.id)
                break
            except Exception:
                log.exception("reading job %s to renumber its events failed", self.job.id)
                await asyncio.sleep(RETRY_SECONDS)
        self._rebasing = False
        if stored is None or stored.status is not JobStatus.RUNNING:
            self.refused()
            return
        was_stalled = stored.state == STALLED
        job = replace(stored, artifact=self.job.artifact or stored.artifact)
        for event in self._pending:
            event.seq = job.seq + 1
            job = job.apply(event)
        self.job = job
        if was_stalled and (not self._pending or self._pending[-1].type is not EventType.PROGRESS):
            self.unstall()
        elif self._pending:
            self._writer.mark(self)

    def catch_up(self, stored: Job) -> None:
        """Build on ``stored`` from now on, when it is newer than this reporter's snapshot
        (others wrote to the job: a report of it on another instance) and nothing of this
        reporter's is pending or in flight; its ETA history and pre-stall state are kept."""
        if stored.seq <= self.job.seq or self._pending or self._rebasing:
            return
        if any(not future.done() for _, future in self._waiters):
            return
        self.job = replace(stored, artifact=self.job.artifact or stored.artifact)

    def unstall(self) -> Event | None:
        """Our lease renewal answered a stall notice: say the job is running again."""
        if self.finished or self.lost:
            return None
        previous = self._state_before_stall
        return self.report_progress({"state": previous or self.job.status.value})

    def _settle(self) -> None:
        waiting = []
        for event, future in self._waiters:
            if future.done():
                continue
            if self.lost:
                future.set_result(False)
            elif event.pos is not None:
                future.set_result(True)
            else:
                waiting.append((event, future))
        self._waiters = waiting

    async def written(self, event: Event) -> bool:
        """Wait until ``event`` is stored and published (``False``: the job was taken over)."""
        return await self._stored(event)

    async def _stored(self, event: Event) -> bool:
        """Wait until ``event`` is stored and published (``False``: the job was taken over)."""
        if self.lost:
            return False
        if event.pos is not None:
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append((event, future))
        return await future

    # -- ending -------------------------------------------------------------------------------

    async def finish(self, type_: EventType, data: dict[str, Any]) -> Event | None:
        """End the job with ``type_`` (a terminal event, or a status change back to queued),
        after everything reported before it; returns it once stored and published (``None`` if
        the job was no longer this worker's)."""
        if self.finished:
            return None
        self.finished = True
        final = self._emit(type_, data)
        return final if await self._stored(final) else None

    async def abandon(self) -> None:
        """Stop without a final event (the job was taken over elsewhere)."""
        self.finished = True
        self.lost = True
        self._pending = []
        self._settle()
