"""``video``: the video generation of seeds 000 and 002.

Eight named steps of 2-3 s each at speed 1 (20 s in all), each reported as progress (step ``i``
of 8 with its name and message) and as one log line carrying the step number, which is what the
seed-002 stream replays. Step 5 draws and encodes a real, small H.264 MP4 (``video.mp4``) of
``duration_seconds`` and makes it the job's artifact.

Interrupt policy ``requeue``: nothing outside the job's own folder is touched, and the MP4 is
written atomically, so re-running an interrupted job from the start is safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobstream.jobs._common import ADVANCED, Pace
from jobstream.jobs.media_files import write_mp4
from jobstream.worker.context import JobContext, JobFailed

VIDEO_FILENAME = "video.mp4"
VIDEO_FPS = 24
VIDEO_SIZE = (320, 180)
TOTAL_STEPS = 8
"""Seed 002 numbers the processing steps 1..8; its stream's step 9 is "Video ready!"."""

VideoModel = Literal["sora-2", "sora-2-pro"]
"""The models a video job can (pretend to) call: a fixed set, so the UI offers a choice."""
_MODEL_LABELS = {"sora-2": "Sora 2", "sora-2-pro": "Sora 2 Pro"}


class VideoParams(BaseModel):
    """Parameters of a ``video`` job: generate a short video from a text prompt."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    prompt: str = Field(
        min_length=1,
        max_length=2000,
        description="What the video shows; drawn on its frames.",
    )
    model: VideoModel = Field(
        default="sora-2",
        description="The generation model to (pretend to) call.",
    )
    reference_image_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Optional reference image the video should follow.",
    )
    duration_seconds: float = Field(
        default=2.0,
        ge=0.5,
        le=10.0,
        description="Length of the output MP4, in seconds.",
    )
    fail_at_step: int | None = Field(
        default=None,
        ge=1,
        le=TOTAL_STEPS,
        description="For demos and tests: fail the job at this step (1-8).",
        json_schema_extra=ADVANCED,
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value


@dataclass(frozen=True, slots=True)
class VideoStep:
    name: str
    message: str
    seconds: float
    """Duration at speed 1."""


def video_steps(model: str = "sora-2") -> tuple[VideoStep, ...]:
    """The eight steps; their messages are seed 002's, emoji included."""
    label = _MODEL_LABELS.get(model, model)
    return (
        VideoStep("Validating request", "🔍 Validating request parameters...", 2.0),
        VideoStep("Processing reference image", "📸 Processing reference image...", 2.5),
        VideoStep("Calling model API", f"🤖 Calling {label} API...", 2.5),
        VideoStep(
            "Waiting for AI processing",
            "⏳ Waiting for AI processing (this may take 2-5 minutes)...",
            3.0,
        ),
        VideoStep("Rendering video frames", "🎬 Rendering video frames...", 3.0),
        VideoStep("Encoding video", "🎞️ Encoding video...", 2.5),
        VideoStep("Uploading video", "☁️ Uploading video...", 2.5),
        VideoStep("Finalizing", "✅ Finalizing...", 2.0),
    )


async def run_video(ctx: JobContext, params: VideoParams, *, speed: float = 1.0) -> dict[str, Any]:
    """The ``video`` handler's body, at ``speed`` times the real pace."""
    pace = Pace(speed)
    frames = 0
    for number, step in enumerate(video_steps(params.model), start=1):
        ctx.progress(
            step=number, total_steps=TOTAL_STEPS, step_name=step.name, message=step.message
        )
        ctx.log(step.message, step=number)
        if params.fail_at_step == number:
            await pace.sleep(ctx, step.seconds / 2)
            raise JobFailed(f"Pipeline error: {step.name} failed")
        if number == 5:
            path = ctx.artifact_path(VIDEO_FILENAME)
            frames = await pace.work(
                ctx,
                step.seconds,
                partial(
                    write_mp4,
                    path,
                    text=params.prompt,
                    seconds=params.duration_seconds,
                    fps=VIDEO_FPS,
                    size=VIDEO_SIZE,
                ),
            )
            ctx.set_artifact(path, "video/mp4")
        else:
            await pace.sleep(ctx, step.seconds)
    return {
        "video_path": VIDEO_FILENAME,
        "duration_seconds": params.duration_seconds,
        "frames": frames,
        "fps": VIDEO_FPS,
        "width": VIDEO_SIZE[0],
        "height": VIDEO_SIZE[1],
        "prompt": params.prompt,
        "model": params.model,
    }


__all__ = ["TOTAL_STEPS", "VideoParams", "VideoStep", "run_video", "video_steps"]
