"""``JobObserver``: hooks on a job's life, for logs and metrics.

The service calls ``queued`` when a job is submitted, the worker pool ``started``, ``finished``
and ``recovered``, and the job's reporter ``progressed`` (every progress report) and
``step_finished`` (through ``StepClock``, which times the steps from the reports). The server
plugs in two observers (``server.logs.JobLog``, ``server.metrics.JobMetrics``) as one
``Observers``; a worker without a server runs with none.

Every hook is called on the event loop, synchronously, and may be called often
(``progressed`` once per report): an observer must be quick and must not block. One that raises
is logged and skipped; the job goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from jobstream.models import Event, EventType, Job

log = logging.getLogger(__name__)


class JobObserver:
    """Every hook does nothing here: subclass and override the ones you need."""

    def queued(self, job: Job) -> None:
        """``job`` was stored and queued (its first event)."""

    def started(self, job: Job, waited_seconds: float) -> None:
        """A worker claimed ``job``, ``waited_seconds`` after it was submitted."""

    def progressed(self, job: Job) -> None:
        """A progress report; ``job`` is the snapshot after it."""

    def step_finished(self, job: Job, step_name: str, seconds: float) -> None:
        """``job`` left step ``step_name`` (for the next one, or completed) after ``seconds``."""

    def finished(self, job: Job, event: Event, seconds: float) -> None:
        """The worker ended ``job`` with ``event`` (completed, failed or cancelled), ``seconds``
        after it started running it."""

    def recovered(self, job: Job, event: Event) -> None:
        """``job``'s worker was gone (the server stopped, or its lease expired): ``event``
        re-queued it (a ``status_change``) or failed it."""


NO_OBSERVER = JobObserver()


class Observers(JobObserver):
    """Several observers as one, called in order (only those that override a hook, so that a
    hook nobody implements costs nothing on the reporter's path)."""

    HOOKS = ("queued", "started", "progressed", "step_finished", "finished", "recovered")

    def __init__(self, observers: Iterable[JobObserver]) -> None:
        self.observers = tuple(observers)
        self._calls: dict[str, tuple[Callable[..., None], ...]] = {
            hook: tuple(
                getattr(o, hook)
                for o in self.observers
                if getattr(type(o), hook) is not getattr(JobObserver, hook)
            )
            for hook in self.HOOKS
        }

    def _each(self, hook: str, *args: object) -> None:
        for call in self._calls[hook]:
            try:
                call(*args)
            except Exception:
                log.exception("job observer hook %s failed", call.__qualname__)

    def queued(self, job: Job) -> None:
        self._each("queued", job)

    def started(self, job: Job, waited_seconds: float) -> None:
        self._each("started", job, waited_seconds)

    def progressed(self, job: Job) -> None:
        self._each("progressed", job)

    def step_finished(self, job: Job, step_name: str, seconds: float) -> None:
        self._each("step_finished", job, step_name, seconds)

    def finished(self, job: Job, event: Event, seconds: float) -> None:
        self._each("finished", job, event, seconds)

    def recovered(self, job: Job, event: Event) -> None:
        self._each("recovered", job, event)


def waited_seconds(job: Job) -> float:
    """Submit to start of a claimed job (for a re-queued one, from its first submit)."""
    if job.started_at is None:
        return 0.0
    return max((job.started_at - job.created_at).total_seconds(), 0.0)


def step_label(current_step: int | None, step_name: str | None) -> str | None:
    """What a step is called: its name, else ``step N``; ``None`` for a job without steps."""
    if step_name:
        return step_name
    return None if current_step is None else f"step {current_step}"


class StepClock:
    """Times a running job's steps from the snapshots its reporter makes, for ``step_finished``
    (a step ends when the next one begins, or when the job completes; a step the job failed or
    was cancelled in did not finish), and passes progress reports on to ``progressed``.
    ``durations`` holds each finished step's seconds, in order (the ETA's history)."""

    __slots__ = ("_observer", "_since", "_step", "durations")

    def __init__(self, job: Job, observer: JobObserver | None) -> None:
        self._observer = observer or NO_OBSERVER
        self.durations: list[float] = []
        self._step = (job.current_step, job.step_name)
        self._since = time.monotonic()

    def saw(self, job: Job, event: Event) -> None:
        """``job`` is the snapshot after ``event``."""
        if event.type is EventType.PROGRESS:
            self._observer.progressed(job)
            step = (job.current_step, job.step_name)
            if step != self._step:
                self._end_step(job)
                self._step = step
        elif event.type is EventType.COMPLETED:
            self._end_step(job)

    def _end_step(self, job: Job) -> None:
        now = time.monotonic()
        name = step_label(*self._step)
        if name is not None:
            self.durations.append(round(now - self._since, 3))
            self._observer.step_finished(job, name, now - self._since)
        self._since = now


__all__ = [
    "NO_OBSERVER",
    "JobObserver",
    "Observers",
    "StepClock",
    "step_label",
    "waited_seconds",
]
