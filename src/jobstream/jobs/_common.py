"""What the demo kinds share: their pace (``JOBSTREAM_DEMO_SPEED``) and blocking file work."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from jobstream.worker.context import JobContext

T = TypeVar("T")

ADVANCED: dict[str, Any] = {"advanced": True}
"""``json_schema_extra`` of a param for demos and tests (``fail_at_step``): the web UI's form
shows it under its "Advanced" disclosure."""


def check_speed(speed: float) -> float:
    """``speed`` as a float, refusing what would make every sleep infinite or negative."""
    speed = float(speed)
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"demo speed must be a positive number, not {speed!r}")
    return speed


class Pace:
    """Real-time durations divided by the demo speed factor."""

    def __init__(self, speed: float) -> None:
        self.speed = check_speed(speed)

    def seconds(self, real_seconds: float) -> float:
        return real_seconds / self.speed

    async def sleep(self, ctx: JobContext, real_seconds: float) -> None:
        """Wait ``real_seconds / speed``; a cancel checkpoint."""
        await ctx.sleep(real_seconds / self.speed)

    async def work(self, ctx: JobContext, real_seconds: float, fn: Callable[[], T]) -> T:
        """Run blocking ``fn`` in a thread, then sleep what is left of the step's duration.

        The step takes ``max(real_seconds / speed, time fn took)``; the event loop stays free.
        A cancel requested meanwhile is raised at the checkpoints before and after.
        """
        ctx.raise_if_cancelled()
        started = time.monotonic()
        result = await asyncio.to_thread(fn)
        await ctx.sleep(max(self.seconds(real_seconds) - (time.monotonic() - started), 0.0))
        return result
