"""The built-in demo job kinds, so that ``jobstream serve`` shows something real at once.

=============  ===========  =======================================================  =========
kind           seed         what it does                                             speed 1
=============  ===========  =======================================================  =========
``video``      000, 002     8 named steps, writes a real H.264 MP4                   20 s
``pdf``        004          12 named steps incl. "AI Upscaling", writes a real PDF   18 s
``task``       003          downloading → transcribing → finalizing, a transcript    30 s
``character``  001          4 steps, returns a new ``characterId``                   5 s
``media``      001          4 steps, writes a real PNG / WAV / MP4                   8 s
=============  ===========  =======================================================  =========

A ``video`` job costs its owner ``VIDEO_COST`` (100) credits, debited at submit and refunded if
the job fails or is cancelled (seed 002); the other kinds are free.

Every kind is registered with ``on_interrupt="requeue"``: none has side effects outside its
own job folder and every file is written atomically, so an interrupted job starts over.

``register_demo_kinds(registry, speed=...)`` takes ``JOBSTREAM_DEMO_SPEED``: every sleep is
divided by it (100 = a hundred times faster). File writing runs in a thread and is not scaled.
"""

from __future__ import annotations

from typing import Any

from jobstream.jobs._common import check_speed
from jobstream.jobs.character import CharacterParams, run_character
from jobstream.jobs.media import MediaParams, run_media
from jobstream.jobs.pdf import PdfParams, pages_bucket, run_pdf
from jobstream.jobs.task import TaskParams, run_task
from jobstream.jobs.video import VideoParams, run_video
from jobstream.worker.context import JobContext
from jobstream.worker.registry import Registry

DEMO_KINDS = ("video", "pdf", "task", "character", "media")
VIDEO_COST = 100
"""Credits a ``video`` job costs its owner (seed 002), refunded if it fails or is cancelled."""


def register_demo_kinds(registry: Registry, *, speed: float = 1.0) -> None:
    """Register the five demo kinds on ``registry``, paced at ``speed`` times real time."""
    speed = check_speed(speed)

    @registry.register("video", params=VideoParams, on_interrupt="requeue", cost=VIDEO_COST)
    async def video(ctx: JobContext, params: VideoParams) -> dict[str, Any]:
        """Generate a short video from a prompt: 8 steps, a real MP4 (seeds 000/002)."""
        return await run_video(ctx, params, speed=speed)

    @registry.register("pdf", params=PdfParams, on_interrupt="requeue", eta_bucket=pages_bucket)
    async def pdf(ctx: JobContext, params: PdfParams) -> dict[str, Any]:
        """Run a 12-step document pipeline producing a real PDF of `pages` pages (seed 004)."""
        return await run_pdf(ctx, params, speed=speed)

    @registry.register("task", params=TaskParams, on_interrupt="requeue")
    async def task(ctx: JobContext, params: TaskParams) -> dict[str, Any]:
        """Transcribe a recording: downloading, transcribing, finalizing (seed 003)."""
        return await run_task(ctx, params, speed=speed)

    @registry.register("character", params=CharacterParams, on_interrupt="requeue")
    async def character(ctx: JobContext, params: CharacterParams) -> dict[str, Any]:
        """Create a character; the result holds its new characterId (seed 001)."""
        return await run_character(ctx, params, speed=speed)

    @registry.register("media", params=MediaParams, on_interrupt="requeue")
    async def media(ctx: JobContext, params: MediaParams) -> dict[str, Any]:
        """Create a real image, audio or video file (seed 001)."""
        return await run_media(ctx, params, speed=speed)


__all__ = [
    "DEMO_KINDS",
    "VIDEO_COST",
    "CharacterParams",
    "MediaParams",
    "PdfParams",
    "TaskParams",
    "VideoParams",
    "register_demo_kinds",
]
