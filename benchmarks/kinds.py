"""The ``bench`` job kind, loaded by benchmark servers with ``JOBSTREAM_KINDS=kinds:register``
(and ``PYTHONPATH=benchmarks``).

It reports progress unthrottled (``progress_interval=0.0``) on a fixed schedule, and every
report's message is ``"<time.time_ns()> <report number> <pad>"``: the wall-clock time it was made
and its number (from 1), so a client computes publish-to-receipt latency from the bytes it
receives, and knows exactly which reports a stream skipped. The schedule is absolute
(report ``i`` is due at ``start + i * interval``): a late timer is caught up by reporting the
overdue events back to back, so the rate stays the one asked for unless the server cannot keep
up, in which case the published rate, not the due rate, is what the benchmark reports.

``start_file``: wait (up to ``start_timeout`` seconds) until this file exists before the first
report, so every subscriber can be connected before the job publishes anything. A job whose
start file never appears holds a stream that never moves: the idle-connection benchmark uses it.
``start_poll_ms``: how often the file is looked for (many jobs waiting at once look less often);
``offset_ms``: how long after the file appeared the first report is due (to spread many jobs'
reports evenly over their interval rather than all at the same instant).
"""

from __future__ import annotations

import asyncio
import os
import time

from pydantic import BaseModel, ConfigDict, Field

from jobstream.worker.context import JobContext
from jobstream.worker.registry import Registry

MAX_BURST = 50
"""At most this many overdue reports back to back; further behind, the schedule restarts."""


class BenchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_ms: float = Field(default=10.0, gt=0)
    count: int | None = Field(default=None, ge=1, le=100_000_000)
    duration: float | None = Field(default=10.0, gt=0, description="seconds, if no count")
    pad: int = Field(default=0, ge=0, le=10_000, description="bytes of padding per message")
    start_file: str | None = None
    start_timeout: float = Field(default=120.0, gt=0)
    start_poll_ms: float = Field(default=5.0, gt=0)
    offset_ms: float = Field(default=0.0, ge=0)


def planned_count(params: BenchParams) -> int:
    if params.count is not None:
        return params.count
    assert params.duration is not None
    return max(1, round(params.duration * 1000 / params.interval_ms))


async def _wait_for_file(ctx: JobContext, path: str, limit: float, every: float) -> None:
    deadline = time.monotonic() + limit
    while not os.path.exists(path):  # noqa: ASYNC240 - a stat per poll, before the run
        if time.monotonic() > deadline:
            raise TimeoutError(f"start file {path} did not appear within {limit} s")
        await ctx.sleep(every)


async def bench(ctx: JobContext, params: BenchParams) -> dict[str, float]:
    """Reports progress on a fixed schedule, unthrottled, with time.time_ns() in the message."""
    if params.start_file:
        await _wait_for_file(
            ctx, params.start_file, params.start_timeout, params.start_poll_ms / 1000
        )
    if params.offset_ms:
        await ctx.sleep(params.offset_ms / 1000)
    count = planned_count(params)
    pad = "x" * params.pad
    interval = params.interval_ms / 1000
    loop = asyncio.get_running_loop()
    started = due = loop.time()
    sent = 0
    while sent < count:
        burst = 0
        while sent < count and burst < MAX_BURST and loop.time() >= due:
            sent += 1
            burst += 1
            ctx.progress(100.0 * sent / count, message=f"{time.time_ns()} {sent} {pad}")
            due += interval
        now = loop.time()
        if due < now - MAX_BURST * interval:
            due = now  # too far behind to catch up: restart the schedule from here
        if sent < count:
            await asyncio.sleep(max(due - now, 0.0))
    elapsed = loop.time() - started
    return {"count": sent, "seconds": elapsed, "rate": sent / elapsed if elapsed else 0.0}


def register(registry: Registry) -> None:
    """``bench`` is failed when its server is interrupted; ``bench_requeue`` (the same job) is
    re-queued and run again from the start (the crash-loop probe uses both)."""
    registry.register("bench", params=BenchParams, progress_interval=0.0, on_interrupt="fail")(
        bench
    )
    registry.register(
        "bench_requeue", params=BenchParams, progress_interval=0.0, on_interrupt="requeue"
    )(bench)

    @registry.register("noop", on_interrupt="fail")
    async def noop(ctx: JobContext, params: object) -> None:
        """Does nothing: what a job costs the machinery around it (``celery_throughput.py``)."""
