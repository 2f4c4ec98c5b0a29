"""The embedded worker pool: claims queued jobs and runs their handlers.

Async handlers run on the event loop; sync handlers run in daemon threads (a thread that
ignores its cancel checkpoints cannot block process exit). A claimed job is leased to this
pool; leases are renewed while the job runs, and jobs whose lease ran out (their worker died)
are recovered by any pool: re-queued or failed, by their kind's ``on_interrupt`` policy. An
embedded server that owns its data folder recovers every running job at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jobstream.bus.base import EventBus
from jobstream.models import Event, EventType, Job, JobStatus
from jobstream.store.base import JobStore
from jobstream.worker.context import JobCancelled, JobContext, JobFailed
from jobstream.worker.leases import LeaseWatcher, status_event
from jobstream.worker.observer import NO_OBSERVER, JobObserver, waited_seconds
from jobstream.worker.registry import JobKind, Registry
from jobstream.worker.reporter import EventWriter, JobReporter

log = logging.getLogger(__name__)

RESULT_URL = "/api/v1/jobs/{id}/result"
COMPLETED_MESSAGE = "Completed"
_RESERVED = frozenset({"result", "output_path", "elapsed_seconds", "message"})


def completed_data(
    result: Any, *, output_path: str | None, elapsed_seconds: float
) -> dict[str, Any]:
    """A ``completed`` event's data: the result, the download URL, the time it ran, the fields
    of a dict result, and a message saying it completed (or the result's own ``message``)."""
    data: dict[str, Any] = {
        "result": result,
        "output_path": output_path,
        "elapsed_seconds": round(elapsed_seconds, 3),
    }
    if isinstance(result, dict):
        data.update({k: v for k, v in result.items() if k not in _RESERVED})
    # The job's last message says it completed, not the last step's "Finalizing..."; a handler
    # may give its own as the result's "message".
    given = result.get("message") if isinstance(result, dict) else None
    data["message"] = given if isinstance(given, str) and given else COMPLETED_MESSAGE
    return data


@dataclass(slots=True)
class _Running:
    job_id: str
    ctx: JobContext | None
    reporter: JobReporter
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    bucket: str = ""
    """The job's ETA bucket (its kind's ``eta_bucket`` of its params)."""


class WorkerPool:
    def __init__(
        self,
        *,
        store: JobStore,
        bus: EventBus,
        registry: Registry,
        data_dir: Path,
        concurrency: int = 4,
        kinds: Collection[str] | None = None,
        lease_seconds: float = 30.0,
        poll_interval: float = 0.5,
        recover_all_on_start: bool = False,
        shutdown_grace: float = 3.0,
        on_finished: Callable[[Job, Event], Any] | None = None,
        observer: JobObserver | None = None,
        claims: bool = True,
        on_requeued: Callable[[Job], Any] | None = None,
        cancel_poll_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self.data_dir = data_dir
        self.concurrency = concurrency
        self.kinds = list(kinds) if kinds is not None else None
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.recover_all_on_start = recover_all_on_start
        self.shutdown_grace = shutdown_grace
        self.on_finished = on_finished
        self.observer = observer or NO_OBSERVER
        self.claims = claims
        """Claim from the queue; ``False``: run only the jobs ``run_one`` is handed (a task
        engine's worker, which gets each job from its own broker)."""
        self.on_requeued = on_requeued
        """Called with a job this pool's watcher or shutdown put back in the queue (a task
        engine's worker sends it to the engine again)."""
        self.cancel_poll_seconds = cancel_poll_seconds
        """Read the running jobs' cancel flags from the store this often: for a worker process
        whose bus does not carry other processes' control messages (``memory://``)."""
        self.worker_id = f"w-{secrets.token_hex(6)}"
        self.writer = EventWriter(store, bus, self.worker_id)
        self.watcher = LeaseWatcher(
            store=store,
            bus=bus,
            registry=registry,
            lease_seconds=lease_seconds,
            observer=self.observer,
            on_recovered=self._on_recovered,
        )
        self._running: dict[str, _Running] = {}
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.writer.start()
        self.bus.on_control(self._on_control)
        if self.recover_all_on_start:
            for job in await self.store.running_jobs():
                await self.recover(job, "the server stopped while this job was running")
        self._tasks = [asyncio.create_task(self._lease_loop(), name="jobstream-leases")]
        if self.claims:
            self._tasks.append(asyncio.create_task(self._claim_loop(), name="jobstream-claim"))
        if self.cancel_poll_seconds:
            self._tasks.append(asyncio.create_task(self._cancel_loop(), name="jobstream-cancels"))

    async def stop(self) -> None:
        """Stop claiming; interrupt running jobs (re-queued or failed by their policy)."""
        self._stopping = True
        self._wakeup.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for running in list(self._running.values()):
            running.cancel_reason = "shutdown"
            if running.ctx is not None:
                running.ctx.request_cancel()
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace)
            # Handlers that ignored the cancel (a sync loop without checkpoints): interrupt them
            # here; their threads are daemons and end with the process.
            for running in list(self._running.values()):
                if running.task in pending:
                    running.task.cancel()
                    await self._interrupt(running)
        await self.writer.stop()

    def notify(self) -> None:
        """A job was queued: look for work now rather than at the next poll."""
        self._wakeup.set()

    @property
    def active(self) -> int:
        return len(self._running)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # -- claiming -----------------------------------------------------------------------------

    def _kinds(self) -> list[str]:
        """The kinds this pool claims: never an external one (a worker outside runs those)."""
        if self.kinds is None:
            return self.registry.local_names()
        return [kind for kind in self.kinds if not self.registry.is_external(kind)]

    async def _claim_loop(self) -> None:
        while not self._stopping:
            claimed: list[tuple[Job, Event]] = []
            free = self.concurrency - len(self._running)
            if free > 0:
                try:
                    # Every free slot in one round trip (one transaction on SQLite).
                    claimed = await self.store.claim_many(
                        self._kinds(),
                        self.worker_id,
                        self.lease_seconds,
                        lambda job: status_event(job, JobStatus.RUNNING, worker=self.worker_id),
                        free,
                    )
                except Exception:
                    log.exception("claiming a job failed; retrying")
            if claimed:
                await self.bus.publish([event for _, event in claimed])
                for job, _ in claimed:
                    self._start(job)
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_interval)

    async def run_one(self, job_id: str) -> Job | None:
        """Claim ``job_id`` (if it is queued) and run it here to its end; the job as it is then
        (``None`` if missing). A job that was not queued is left alone and returned as it is:
        finished, or running under another worker's lease."""
        job = await self._claim_given(job_id)
        if job is None:
            return await self.store.get(job_id)
        running = self._start(job)
        assert running.task is not None
        await asyncio.shield(running.task)
        return await self.store.get(job_id)

    async def _claim_given(self, job_id: str) -> Job | None:
        """Claim ``job_id`` for this worker if it is queued, and announce it running."""
        claimed = await self.store.claim_job(
            job_id,
            self.worker_id,
            self.lease_seconds,
            lambda job: status_event(job, JobStatus.RUNNING, worker=self.worker_id),
        )
        if claimed is None:
            return None
        job, event = claimed
        await self.bus.publish([event])
        return job

    def _register(self, job: Job) -> _Running:
        """A job this worker now runs: its reporter, counted as running here."""
        reporter = JobReporter(job, self.writer, observer=self.observer)
        self.observer.started(job, waited_seconds(job))
        running = _Running(job.id, None, reporter)
        self._running[job.id] = running
        self._idle.clear()
        return running

    def _start(self, job: Job) -> _Running:
        running = self._register(job)
        running.task = asyncio.create_task(self._run(job, running), name=f"jobstream-job-{job.id}")
        return running

    async def _run(self, job: Job, running: _Running) -> None:
        reporter = running.reporter
        try:
            kind = self.registry.get(job.kind)
            try:
                params = kind.params.model_validate(job.params)
            except ValidationError as exc:
                await self._finish(
                    reporter, EventType.FAILED, {"message": f"invalid params: {exc}"}
                )
                return
            running.bucket = kind.bucket(params)
            await self._learn(reporter, running.bucket)
            ctx = JobContext(
                job,
                params,
                reporter,
                data_dir=self.data_dir,
                progress_interval=kind.progress_interval,
                loop=asyncio.get_running_loop(),
            )
            running.ctx = ctx
            if job.cancel_requested or running.cancel_reason:
                ctx.request_cancel()
            await self._execute(kind, ctx, running)
        except Exception as exc:  # a bug in the worker itself: the job must still end
            log.exception("job %s crashed the worker", job.id)
            await self._finish(reporter, EventType.FAILED, {"message": f"worker error: {exc}"})
        finally:
            self._running.pop(job.id, None)
            if not self._running:
                self._idle.set()
            self._wakeup.set()

    async def _execute(self, kind: JobKind, ctx: JobContext, running: _Running) -> None:
        try:
            if kind.is_async:
                result = await kind.handler(ctx, ctx.params)
            else:
                result = await _in_thread(kind.handler, ctx, ctx.params)
        except Exception as exc:
            await self.conclude(ctx, error=exc)
        else:
            await self.conclude(ctx, result=result)

    async def conclude(
        self, ctx: JobContext, *, result: Any = None, error: BaseException | None = None
    ) -> None:
        """End a job this pool runs with its handler's outcome: ``completed`` with ``result``,
        or by ``error`` (``JobCancelled``: cancelled, re-queued on shutdown, or dropped if the
        lease was lost; ``JobFailed``: failed with its message; anything else: failed with the
        exception's type and text)."""
        running = self._running.get(ctx.job_id)
        if running is None:
            return
        reporter = running.reporter
        kind_name = reporter.job.kind
        ctx.flush()
        if isinstance(error, JobCancelled):
            if running.cancel_reason == "shutdown":
                await self._interrupt(running)
            elif running.cancel_reason == "lost" or reporter.lost:
                await reporter.abandon()
            else:
                await self._finish(reporter, EventType.CANCELLED, {"message": "Cancelled by user"})
        elif isinstance(error, JobFailed):
            await self._finish(reporter, EventType.FAILED, {"message": str(error)})
        elif error is not None:
            log.warning("job %s (%s) failed", ctx.job_id, kind_name, exc_info=error)
            text = str(error)
            message = f"{type(error).__name__}: {text}" if text else type(error).__name__
            await self._finish(reporter, EventType.FAILED, {"message": message})
        else:
            data = completed_data(
                result,
                output_path=(
                    RESULT_URL.format(id=ctx.job_id) if reporter.job.artifact is not None else None
                ),
                elapsed_seconds=time.monotonic() - reporter.started,
            )
            await self._finish(reporter, EventType.COMPLETED, data, running.bucket)

    async def attach(self, job_id: str, params: Any = None) -> JobContext | None:
        """Claim ``job_id`` (if queued) for code that runs outside this pool (a plain Celery
        task reporting as a job): its lease is renewed and cancels reach it as for a handler
        of a kind; end it with ``conclude`` (or ``requeue``) and then ``detach``. ``None`` if
        the job was not queued."""
        job = await self._claim_given(job_id)
        if job is None:
            return None
        running = self._register(job)
        ctx = JobContext(
            job,
            params if params is not None else job.params,
            running.reporter,
            data_dir=self.data_dir,
            progress_interval=0.1,
            loop=asyncio.get_running_loop(),
        )
        running.ctx = ctx
        if job.cancel_requested:
            ctx.request_cancel()
        return ctx

    def detach(self, job_id: str) -> None:
        """Forget a job ``attach`` handed out (after it was concluded)."""
        self._running.pop(job_id, None)
        if not self._running:
            self._idle.set()

    async def requeue(self, ctx: JobContext, reason: str, message: str | None = None) -> bool:
        """Put a job this pool runs back in the queue (a task engine will run it again), after
        a ``log`` warning saying why; ``False`` if it was no longer this worker's."""
        running = self._running.get(ctx.job_id)
        if running is None or running.reporter.finished:
            return False
        ctx.flush()
        if message:
            running.reporter.log("warning", message, running.reporter.job.current_step)
        event = await running.reporter.finish(
            EventType.STATUS_CHANGE,
            {"old_status": "running", "new_status": "queued", "reason": reason},
        )
        return event is not None

    async def _learn(self, reporter: JobReporter, bucket: str) -> None:
        """Give the job's ETA what earlier runs of its kind and bucket took."""
        try:
            history = await self.store.step_history(reporter.job.kind, bucket)
        except Exception:
            log.exception("reading the step history of %s failed", reporter.job.kind)
            return
        reporter.learn(history)

    async def _remember(self, reporter: JobReporter, bucket: str | None) -> None:
        """Record a completed run's step durations for the next runs' ETA."""
        try:
            await self.store.record_steps(
                reporter.job.kind, bucket or "", reporter.step_durations()
            )
        except Exception:
            log.exception("recording the step durations of job %s failed", reporter.job.id)

    async def _finish(
        self,
        reporter: JobReporter,
        type_: EventType,
        data: dict[str, Any],
        bucket: str | None = None,
    ) -> None:
        final = await reporter.finish(type_, data)
        if final is not None and type_ is EventType.COMPLETED:
            await self._remember(reporter, bucket)
        if final is not None:
            self.observer.finished(reporter.job, final, time.monotonic() - reporter.started)
        if final is not None and self.on_finished is not None:
            outcome = self.on_finished(reporter.job, final)
            if asyncio.iscoroutine(outcome):
                await outcome

    async def _interrupt(self, running: _Running) -> None:
        reporter = running.reporter
        if reporter.finished:
            return
        policy = self._policy(reporter.job.kind)
        if policy == "requeue":
            event = await reporter.finish(
                EventType.STATUS_CHANGE,
                {"old_status": "running", "new_status": "queued", "reason": "server shutting down"},
            )
            if event is not None:
                await self._requeued(reporter.job)
        else:
            await self._finish(
                reporter, EventType.FAILED, {"message": "Interrupted: the server shut down"}
            )

    def _policy(self, kind: str) -> str:
        return self.watcher.policy(kind)

    async def _requeued(self, job: Job) -> None:
        if self.on_requeued is None:
            return
        try:
            outcome = self.on_requeued(job)
            if asyncio.iscoroutine(outcome):
                await outcome
        except Exception:
            log.exception("handing re-queued job %s on to its task engine failed", job.id)

    # -- cancellation and recovery ------------------------------------------------------------

    async def _on_control(self, message: dict[str, Any]) -> None:
        if message.get("type") != "cancel":
            return
        running = self._running.get(str(message.get("job_id")))
        if running is not None and running.cancel_reason is None:
            running.cancel_reason = "user"
            if running.ctx is not None:
                running.ctx.request_cancel()

    async def recover(self, job: Job, reason: str) -> Event | None:
        """End a running job whose worker is gone: re-queue it or fail it, by its policy."""
        event = await self.watcher.recover(job, reason)
        if event is not None:
            self._wakeup.set()
        return event

    async def _on_recovered(self, job: Job, event: Event) -> None:
        if event.type is EventType.STATUS_CHANGE and job.status is JobStatus.QUEUED:
            await self._requeued(job)
        if event.type.terminal and self.on_finished is not None:
            outcome = self.on_finished(job, event)
            if asyncio.iscoroutine(outcome):
                await outcome

    async def _lease_loop(self) -> None:
        """Renew this pool's leases every third of their time, and watch everyone's (stall
        notices, recovery: ``LeaseWatcher``) twice as often."""
        period = max(self.lease_seconds / 6, 0.05)
        beat = 0
        while not self._stopping:
            await asyncio.sleep(period)
            beat += 1
            try:
                if self._running and beat % 2 == 0:
                    await self._renew()
                await self.watcher.check(skip=set(self._running))
            except Exception:
                log.exception("lease upkeep failed; retrying")

    async def _cancel_loop(self) -> None:
        assert self.cancel_poll_seconds
        while not self._stopping:
            await asyncio.sleep(self.cancel_poll_seconds)
            for job_id, running in list(self._running.items()):
                if running.cancel_reason is not None:
                    continue
                try:
                    job = await self.store.get(job_id)
                except Exception:
                    log.exception("reading cancel flags failed; retrying")
                    break
                if job is not None and job.cancel_requested:
                    await self._on_control({"type": "cancel", "job_id": job_id})

    async def _renew(self) -> None:
        renewal = await self.store.renew_leases(
            list(self._running), self.worker_id, self.lease_seconds
        )
        for job_id in renewal.lost:
            running = self._running.get(job_id)
            if running is not None and not running.reporter.finished:
                log.warning(
                    "job %s was taken over elsewhere (its lease ran out); stopping it here", job_id
                )
                running.cancel_reason = "lost"
                if running.ctx is not None:
                    running.ctx.request_cancel()
        for job_id in renewal.unstalled:
            running = self._running.get(job_id)
            if running is not None:
                running.reporter.unstall()
        for job_id in renewal.cancelled:
            await self._on_control({"type": "cancel", "job_id": job_id})


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value, error = fn(*args), None
        except BaseException as exc:
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=target, daemon=True, name="jobstream-handler").start()
    return await future
