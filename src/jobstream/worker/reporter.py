"""``JobReporter``: the single writer of a running job's events.

A worker that claimed a job owns its event numbering until the job ends. Each report becomes an
event with the next ``seq`` at once, is folded into the reporter's snapshot, and goes out on the
bus within one loop turn, so readers see it in milliseconds. The store gets the same events in
batches (every ``flush_interval``, sooner when many pile up), one transaction each, which is
what keeps a job reporting a thousand times a second cheap. The bus's in-flight window covers
readers who catch up from the store in between.

Only progress goes out before it is stored: it restates the job's state, and a newer one
supersedes it. A log line, a status change and the terminal event are stored first and
published after (a few milliseconds later), so a crash can lose progress but never a line of
the job's history, and whoever sees ``completed`` can fetch the finished job.

Publishing progress before storing it is safe across a crash because of the reservation: the
reporter only publishes seqs up to the job's stored ``seq_reserved``, which each batch raises
(by a window that follows the reporting rate) in the same transaction. If the process dies, the
job's next writer fills the reserved range (``Job.fill_reserved``) before its own event, so a
seq a reader saw is never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

from jobstream.bus.base import EventBus
from jobstream.eta import EtaEstimator
from jobstream.models import Artifact, Event, EventType, Job
from jobstream.store.base import JobStore, StaleJob
from jobstream.worker.observer import JobObserver, StepClock

log = logging.getLogger(__name__)

_PROGRESS_FIELDS = ("progress", "current_step", "total_steps", "step_name", "state", "message")
MIN_WINDOW = 16
MAX_WINDOW = 1024


class JobReporter:
    def __init__(
        self,
        job: Job,
        *,
        store: JobStore,
        bus: EventBus,
        flush_interval: float = 0.1,
        observer: JobObserver | None = None,
    ) -> None:
        self.job = job
        self._store = store
        self._bus = bus
        self._flush_interval = flush_interval
        self._unpublished: list[Event] = []
        self._unstored: list[Event] = []
        self._eta = EtaEstimator()
        self._kick = asyncio.Event()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._stopping = False
        self._reserved = job.seq_reserved
        self._stored = job.seq
        self._window = MIN_WINDOW
        self._steps = StepClock(job, observer)
        self.finished = False
        self.lost = False
        self.started = time.monotonic()
        self._pump_task = asyncio.create_task(self._pump(), name=f"jobstream-reporter-{job.id}")

    # -- reports (loop thread, synchronous) ---------------------------------------------------

    def report_progress(self, report: dict[str, Any], immediate: bool = False) -> None:
        if self.finished:
            return
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
            data["eta_seconds"] = self._eta.update(float(report["progress"]))
        else:
            data["eta_seconds"] = job.eta_seconds
        self._emit(EventType.PROGRESS, data)

    def log(self, level: str, message: str, step: int | None) -> None:
        if self.finished:
            return
        self._emit(
            EventType.LOG,
            {
                "level": level,
                "message": message,
                "step": step if step is not None else self.job.current_step,
            },
        )

    def set_artifact(self, path: str, media_type: str, filename: str) -> None:
        self.job = replace(self.job, artifact=Artifact(path, media_type, filename))

    def _emit(self, type_: EventType, data: dict[str, Any]) -> Event:
        job = self.job
        event = Event(job_id=job.id, owner=job.owner, seq=job.seq + 1, type=type_, data=data)
        self.job = job.apply(event)
        self._steps.saw(self.job, event)
        self._unpublished.append(event)
        self._unstored.append(event)
        self._kick.set()
        return event

    # -- delivery -----------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Publish what was reported, in order, up to the reservation; store beside it."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            pending = self._unpublished
            if pending:
                cut = 0
                for event in pending:
                    if event.seq > self._reserved or (
                        event.seq > self._stored and event.type is not EventType.PROGRESS
                    ):
                        break
                    cut += 1
                if cut:
                    self._unpublished = pending[cut:]
                    await self._bus.publish(pending[:cut])
            if self._stopping:
                return
            if not self._unstored or self._flushing is not None:
                continue
            # Store now when publishing waits (for the reservation, or to store a log line or
            # status change first) or half the window is used, else within ``flush_interval``.
            urgent = bool(self._unpublished) or len(self._unstored) * 2 >= self._window
            if urgent:
                if self._flush_timer is not None:
                    self._flush_timer.cancel()
                self._start_flush()
            elif self._flush_timer is None:
                self._flush_timer = asyncio.get_running_loop().call_later(
                    self._flush_interval, self._start_flush
                )

    def _start_flush(self) -> None:
        self._flush_timer = None
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush_then_rearm())

    async def _flush_then_rearm(self) -> None:
        try:
            await self._flush()
        finally:
            self._flushing = None
            if (self._unstored or self._unpublished) and not self._stopping:
                self._kick.set()

    async def _flush(self) -> None:
        if not self._unstored or self.lost:
            return
        events, self._unstored = self._unstored, []
        # The window follows the rate: room for twice this batch, within bounds.
        self._window = min(max(MIN_WINDOW, 2 * len(events)), MAX_WINDOW)
        self.job = replace(self.job, seq_reserved=self.job.seq + self._window)
        job = self.job
        try:
            await self._store.append(job, events)
        except StaleJob:
            self.lost = True
            log.warning("job %s was taken over while running here; its reports stop", job.id)
        except Exception:
            # The store is unreachable for now: keep the batch and try again next interval.
            log.exception("storing events of job %s failed; retrying", job.id)
            self._unstored = events + self._unstored
            await asyncio.sleep(self._flush_interval)
        else:
            self._reserved = job.seq_reserved
            self._stored = job.seq

    async def finish(self, type_: EventType, data: dict[str, Any]) -> Event | None:
        """End the job with ``type_`` (a terminal event, or a status change back to queued):
        everything is stored, the reservation closed, then everything not yet out is published
        (the final event last)."""
        if self.finished:
            return None
        self.finished = True
        await self._stop_pump()
        final = self._emit(type_, data)
        if self.lost:
            return None
        self.job = replace(self.job, seq_reserved=self.job.seq)
        events, self._unstored = self._unstored, []
        try:
            await self._store.append(self.job, events)
        except StaleJob:
            self.lost = True
            log.warning("job %s was taken over before it could finish here", self.job.id)
            return None
        batch, self._unpublished = self._unpublished, []
        await self._bus.publish(batch)
        return final

    async def abandon(self) -> None:
        """Stop without a final event (the job was taken over elsewhere)."""
        self.finished = True
        await self._stop_pump()

    async def _stop_pump(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._stopping = True
        self._kick.set()
        if not self._pump_task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
