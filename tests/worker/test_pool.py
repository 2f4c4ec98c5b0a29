"""The worker pool, context and reporter in-process, with the in-memory backends."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from jobstream.models import EventType, JobStatus
from jobstream.testing import JobHarness
from jobstream.worker.context import JobContext, JobFailed
from jobstream.worker.registry import Registry


class N(BaseModel):
    n: int = 10


def registry() -> Registry:
    reg = Registry()

    @reg.register("count", params=N, progress_interval=0.05)
    async def count(ctx: JobContext, params: N) -> dict[str, int]:
        for i in range(params.n):
            ctx.progress(100 * (i + 1) / params.n)
            await ctx.sleep(0)
        return {"n": params.n}

    @reg.register("tight", params=N, progress_interval=0.1)
    async def tight(ctx: JobContext, params: N) -> None:
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 0.35:
            i += 1
            ctx.progress(i % 100, message=f"{i}")
            if i % 1000 == 0:
                await asyncio.sleep(0)

    @reg.register("steps_sync", params=N)
    def steps_sync(ctx: JobContext, params: N) -> str:
        for step in range(1, params.n + 1):
            ctx.progress(step=step, total_steps=params.n, step_name=f"s{step}")
            ctx.log(f"line {step}")
        return "ok"

    @reg.register("bar", params=N)
    async def bar(ctx: JobContext, params: N) -> None:
        for _ in ctx.tqdm(range(params.n), desc="items"):
            await asyncio.sleep(0.01)

    @reg.register("fail")
    async def fail(ctx: JobContext, params: object) -> None:
        raise JobFailed("Pipeline error: nope")

    @reg.register("wait", on_interrupt="fail")
    async def wait(ctx: JobContext, params: object) -> None:
        while True:
            ctx.progress(1)
            await ctx.sleep(0.02)

    return reg


async def test_a_job_runs_to_completed_with_gap_free_events() -> None:
    async with JobHarness(registry()) as h:
        job = await h.submit("count", {"n": 5})
        await h.run_until_idle()
        final = await h.get(job.id)
        events = h.events_of(job.id)
    assert final.status is JobStatus.COMPLETED and final.result == {"n": 5}
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type is EventType.COMPLETED and events[-1].data["n"] == 5


async def test_progress_is_throttled_at_the_source_and_the_last_report_is_not_lost() -> None:
    async with JobHarness(registry()) as h:
        job = await h.submit("tight", {})
        await h.run_until_idle()
        progress = [e for e in h.events_of(job.id) if e.type is EventType.PROGRESS]
    # Hundreds of thousands of reports in 0.35 s at one per 0.1 s: a handful of events.
    assert 2 <= len(progress) <= 6
    stored = await h.store.events_after(job.id, 0)
    assert stored is not None


async def test_store_writes_of_every_running_job_share_transactions() -> None:
    """Group commit: many jobs reporting at once are stored in far fewer transactions than
    events (one per pending batch of every job, not one per event or per job)."""
    reg = Registry()

    @reg.register("chatty", params=N, progress_interval=0.0)
    async def chatty(ctx: JobContext, params: N) -> None:
        for i in range(params.n):
            ctx.progress(100 * (i + 1) / params.n)
            await asyncio.sleep(0)

    async with JobHarness(reg, concurrency=40) as h:
        for _ in range(40):
            await h.submit("chatty", {"n": 200})
        await h.run_until_idle()
        transactions = h.pool.writer.transactions
        events = len(h.events_of_all())
    assert events > 40 * 200
    assert transactions < events / 10, (transactions, events)


async def test_sync_handlers_run_in_a_thread_and_report_steps_and_logs() -> None:
    async with JobHarness(registry()) as h:
        job = await h.submit("steps_sync", {"n": 3})
        await h.run_until_idle()
        events = h.events_of(job.id)
    steps = [e.data["current_step"] for e in events if e.type is EventType.PROGRESS]
    logs = [e.data["message"] for e in events if e.type is EventType.LOG]
    assert steps == [1, 2, 3] and logs == ["line 1", "line 2", "line 3"]
    assert events[-1].data["result"] == "ok"


async def test_tqdm_wrapper_reports_the_loop() -> None:
    async with JobHarness(registry()) as h:
        job = await h.submit("bar", {"n": 20})
        await h.run_until_idle()
        progress = [e.data for e in h.events_of(job.id) if e.type is EventType.PROGRESS]
    assert progress and progress[-1]["progress"] == 100.0
    assert progress[-1]["message"] == "items: 20/20"


async def test_failure_and_cancel_and_interrupt_policy() -> None:
    async with JobHarness(registry()) as h:
        failed = await h.submit("fail")
        waiting = await h.submit("wait")
        await asyncio.sleep(0.1)
        await h.cancel(waiting.id)
        await h.run_until_idle()
        assert (await h.get(failed.id)).error == "Pipeline error: nope"
        assert (await h.get(waiting.id)).status is JobStatus.CANCELLED
        interrupted = await h.submit("wait")
        await asyncio.sleep(0.1)
    # Leaving the harness stops the pool: a "fail" kind fails with the reason.
    job = await h.store.get(interrupted.id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error == "Interrupted: the server shut down"


async def test_unknown_params_are_refused_before_anything_is_stored() -> None:
    from jobstream.service import InvalidParams

    async with JobHarness(registry()) as h:
        with pytest.raises(InvalidParams) as caught:
            await h.submit("count", {"n": "many"})
        assert caught.value.errors[0]["loc"] == ["body", "params", "n"]
        assert (await h.store.list_jobs(owner=None)).items == []


async def test_a_second_run_has_an_eta_from_its_first_event_learned_from_the_first() -> None:
    reg = Registry()

    class Pages(BaseModel):
        pages: int = 1

    @reg.register("steps", params=Pages, eta_bucket=lambda p: f"pages:{p.pages}")
    async def steps(ctx: JobContext, params: Pages) -> None:
        for step in range(1, 4):
            ctx.progress(step=step, total_steps=3, step_name=f"s{step}")
            await ctx.sleep(0.05 * params.pages)

    def first_eta(h: JobHarness, job_id: str) -> float | None:
        progress = [e for e in h.events_of(job_id) if e.type is EventType.PROGRESS]
        return progress[0].data["eta_seconds"]

    async with JobHarness(reg) as h:
        first = await h.submit("steps", {"pages": 2})
        await h.run_until_idle()
        assert first_eta(h, first.id) is None  # nothing learned yet
        history = await h.store.step_history("steps", "pages:2")
        assert len(history) == 1 and len(history[0]) == 3
        assert all(0.08 <= d <= 0.5 for d in history[0])

        second = await h.submit("steps", {"pages": 2})
        other_bucket = await h.submit("steps", {"pages": 1})
        await h.run_until_idle()
        learned = first_eta(h, second.id)
        assert learned is not None and 0.25 <= learned <= 1.5  # ~3 steps of 0.1 s
        assert first_eta(h, other_bucket.id) is None  # another bucket learned nothing
        assert len(await h.store.step_history("steps", "pages:2")) == 2
