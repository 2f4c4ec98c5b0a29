"""Job kinds for tests, loaded by test servers with JOBSTREAM_KINDS=testkinds:register."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from jobstream.worker.context import JobContext
from jobstream.worker.registry import Registry


class FloodParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=1000, ge=1, le=1_000_000)
    interval_ms: float = Field(default=0.0, ge=0)
    pad: int = Field(default=0, ge=0, le=10_000, description="bytes of padding per message")


class ForeverParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_ms: float = Field(default=50.0, gt=0)


class SteppedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(default=5, ge=1)
    step_seconds: float = Field(default=0.2, ge=0)


def register(registry: Registry) -> None:
    @registry.register("flood", params=FloodParams, progress_interval=0.0)
    async def flood(ctx: JobContext, params: FloodParams) -> dict[str, int]:
        """Reports progress as fast as asked, unthrottled."""
        pad = "x" * params.pad
        for i in range(1, params.count + 1):
            ctx.progress(100.0 * i / params.count, message=f"{time.time_ns()} {pad}")
            if params.interval_ms:
                await ctx.sleep(params.interval_ms / 1000)
            elif i % 100 == 0:
                await ctx.sleep(0)
        return {"count": params.count}

    @registry.register("forever", params=ForeverParams, on_interrupt="fail")
    async def forever(ctx: JobContext, params: ForeverParams) -> None:
        """Reports progress until cancelled; fails when the server is interrupted."""
        i = 0
        while True:
            i += 1
            ctx.progress(i % 100, message=f"tick {i}")
            await ctx.sleep(params.interval_ms / 1000)

    @registry.register("stepped_sync", params=SteppedParams)
    def stepped_sync(ctx: JobContext, params: SteppedParams) -> dict[str, int]:
        """A sync handler, run in a thread."""
        for step in range(1, params.steps + 1):
            ctx.progress(step=step, total_steps=params.steps, step_name=f"step {step}")
            ctx.log(f"step {step}")
            ctx.sleep_sync(params.step_seconds)
        return {"steps": params.steps}

    @registry.register("crash")
    async def crash(ctx: JobContext, params: object) -> None:
        """Raises an unexpected exception."""
        raise RuntimeError("disk on fire")

    @registry.register("logflood", params=FloodParams, progress_interval=0.0)
    async def logflood(ctx: JobContext, params: FloodParams) -> dict[str, int]:
        """Log lines as fast as asked (a reader's backlog of them is never coalesced)."""
        pad = "x" * params.pad
        for i in range(1, params.count + 1):
            ctx.log(f"line {i} {pad}")
            if params.interval_ms:
                await ctx.sleep(params.interval_ms / 1000)
            elif i % 100 == 0:
                await ctx.sleep(0)
        return {"count": params.count}
