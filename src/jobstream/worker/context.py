"""What a handler sees: ``JobContext``.

Reporting methods (``progress``, ``set_state``, ``log``) are plain, non-blocking calls that work
the same from an async handler and from a sync handler running in a thread: they hand the
report to the job's reporter on the event loop. Progress is throttled here, at the source (at
most one event per ``progress_interval`` unless the step changes); the newest suppressed report
is sent when the interval ends, so the last state is never lost. Status changes, logs and the
terminal event are never throttled.

Cancellation is cooperative: ``progress``, ``sleep`` and ``raise_if_cancelled`` are checkpoints
that raise ``JobCancelled`` once a cancel was requested.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm import tqdm as _tqdm

from jobstream.artifacts import job_folder, stored_path
from jobstream.models import Job

if TYPE_CHECKING:
    from jobstream.worker.reporter import JobReporter

T = TypeVar("T")


class JobCancelled(Exception):
    """Raised inside a handler at the next checkpoint after a cancel was requested."""


class JobFailed(Exception):
    """Raise to fail a job with exactly this message (no exception type prefixed)."""


class JobContext:
    def __init__(
        self,
        job: Job,
        params: Any,
        reporter: JobReporter,
        *,
        data_dir: Path,
        progress_interval: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.job = job
        self.job_id = job.id
        self.params = params
        self._reporter = reporter
        self._data_dir = data_dir
        self._artifacts_dir = job_folder(data_dir, job.id)
        self._interval = progress_interval
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._cancel = threading.Event()
        self._cancel_async = asyncio.Event()
        self._last_sent = 0.0
        self._last_step: tuple[int | None, str | None] = (None, None)
        self._held: dict[str, Any] | None = None
        self._flush_scheduled = False
        self._lock = threading.Lock()

    # -- cancellation -------------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled("cancelled")

    def request_cancel(self) -> None:
        """Called by the worker when a cancel request arrives (loop thread)."""
        self._cancel.set()
        self._cancel_async.set()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` that ends early, raising ``JobCancelled``, on a cancel."""
        self.raise_if_cancelled()
        try:
            await asyncio.wait_for(self._cancel_async.wait(), timeout=max(seconds, 0))
        except TimeoutError:
            return
        raise JobCancelled("cancelled")

    def sleep_sync(self, seconds: float) -> None:
        """The blocking form of ``sleep``, for sync handlers running in a thread."""
        if self._cancel.wait(timeout=max(seconds, 0)):
            raise JobCancelled("cancelled")

    # -- reporting ----------------------------------------------------------------------------

    def progress(
        self,
        percent: float | None = None,
        *,
        step: int | None = None,
        total_steps: int | None = None,
        step_name: str | None = None,
        message: str | None = None,
        state: str | None = None,
    ) -> None:
        """Report progress as a percent, a step ``i`` of ``n`` with a name, or both.

        Without ``percent``, it is derived from the steps: step ``i`` of ``n`` is ``100*(i-1)/n``
        (step ``i`` has started, not finished). A checkpoint: raises ``JobCancelled``.
        """
        self.raise_if_cancelled()
        if percent is None and step is not None and total_steps:
            percent = 100.0 * (step - 1) / total_steps
        report: dict[str, Any] = {}
        if percent is not None:
            report["progress"] = max(0.0, min(100.0, float(percent)))
        if step is not None:
            report["current_step"] = step
        if total_steps is not None:
            report["total_steps"] = total_steps
        if step_name is not None:
            report["step_name"] = step_name
        if message is not None:
            report["message"] = message
        if state is not None:
            report["state"] = state
        now = time.monotonic()
        with self._lock:
            step_key = (step, step_name)
            step_changed = (
                step is not None or step_name is not None
            ) and step_key != self._last_step
            if step_changed or now - self._last_sent >= self._interval:
                if step is not None or step_name is not None:
                    self._last_step = step_key
                self._last_sent = now
                held, self._held = self._held, None
                if held:
                    held.update(report)
                    report = held
                send = True
            else:
                if self._held is None:
                    self._held = report
                else:
                    self._held.update(report)
                send = False
                schedule = not self._flush_scheduled
                self._flush_scheduled = True
        if send:
            self._call(self._reporter.report_progress, report)
        elif schedule:
            delay = self._interval - (now - self._last_sent)
            self._call(self._schedule_held, delay)

    def _schedule_held(self, delay: float) -> None:
        self._loop.call_later(max(delay, 0.0), self._send_held)

    def _send_held(self) -> None:
        """Timer: send the newest held report, unless a report went out meanwhile (then wait
        out the rest of that interval)."""
        with self._lock:
            wait = self._interval - (time.monotonic() - self._last_sent)
            if self._held is not None and wait > 0.001:
                held = None
            else:
                self._flush_scheduled = False
                held, self._held = self._held, None
                if held:
                    self._last_sent = time.monotonic()
        if held is None and self._flush_scheduled:
            self._schedule_held(wait)
        elif held and not self._reporter.finished:
            self._reporter.report_progress(held)

    def flush(self) -> None:
        """Send a held progress report now (the worker calls this when the handler returns)."""
        with self._lock:
            held, self._held = self._held, None
        if held and not self._reporter.finished:
            self._reporter.report_progress(held)

    def set_state(self, state: str) -> None:
        """Set the job's free state label (``transcribing``); sent at once."""
        self._call(self._reporter.report_progress, {"state": state}, True)

    def log(self, message: str, *, level: str = "info", step: int | None = None) -> None:
        """Append a log line to the job; never throttled."""
        self._call(self._reporter.log, level, message, step)

    def _call(self, fn: Any, *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    # -- outputs ------------------------------------------------------------------------------

    def artifact_path(self, filename: str) -> Path:
        """A path in this job's own folder where the handler may write an output file."""
        if "/" in filename or "\\" in filename or filename in {"", ".", ".."}:
            raise ValueError(f"artifact filename must be a plain file name, not {filename!r}")
        self._artifacts_dir.mkdir(parents=True, exist_ok=True)
        return self._artifacts_dir / filename

    def set_artifact(self, path: Path, media_type: str, filename: str | None = None) -> None:
        """Declare the job's downloadable output (served by ``GET /api/v1/jobs/{id}/result``).

        The file must be in the data folder (``artifact_path`` gives one); ``ValueError``
        otherwise."""
        stored = stored_path(self._data_dir, Path(path))
        self._call(self._reporter.set_artifact, stored, media_type, filename or Path(path).name)

    def tqdm(
        self,
        iterable: Iterable[T] | None = None,
        *,
        total: float | None = None,
        desc: str | None = None,
        **kwargs: Any,
    ) -> _tqdm[T]:
        """A ``tqdm`` whose display is this job's progress; use it as ``tqdm`` itself."""
        return ProgressBar(self, iterable, total=total, desc=desc, **kwargs)


class ProgressBar(_tqdm):  # type: ignore[type-arg]
    """``tqdm`` that reports to a job instead of drawing on a terminal.

    tqdm already throttles display by ``mininterval``; the context throttles again by the
    kind's ``progress_interval``, and ``close`` always sends the final count.
    """

    def __init__(self, ctx: JobContext, *args: Any, **kwargs: Any) -> None:
        self._job_ctx = ctx
        kwargs.setdefault("mininterval", 0.05)
        kwargs["file"] = io.StringIO()
        kwargs.setdefault("dynamic_ncols", False)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> None:
        ctx = getattr(self, "_job_ctx", None)
        if ctx is None or (getattr(self, "_closing", False) and ctx.cancelled):
            return
        total = self.total
        percent = 100.0 * self.n / total if total else None
        message = f"{self.desc + ': ' if self.desc else ''}{self.n}/{total if total else '?'}"
        ctx.progress(percent, message=message)

    def close(self) -> None:
        self._closing = True
        super().close()
