"""``media``: the media creation job of seed 001.

Four steps of 2 s each at speed 1 (8 s in all). Step 3 writes a real small file of the asked
type and makes it the job's artifact: a PNG (Pillow) for ``image``, a 1 s 440 Hz sine tone WAV
(stdlib ``wave``) for ``audio``, a 2 s H.264 MP4 for ``video``. With ``fail_at_step=k`` the job
fails halfway through step ``k`` with "Pipeline error: <step name> failed".

Interrupt policy ``requeue``: the file is written atomically in the job's own folder and nothing
else is touched, so a re-run starts over (with a fresh ``mediaId``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobstream.jobs._common import ADVANCED, Pace
from jobstream.jobs.media_files import write_mp4, write_png, write_wav
from jobstream.worker.context import JobContext, JobFailed

MediaType = Literal["image", "audio", "video"]

STEP_SECONDS = 2.0
FILE_STEP = 3
TOTAL_STEPS = 4

EXTENSIONS: dict[str, tuple[str, str]] = {
    "image": ("png", "image/png"),
    "audio": ("wav", "audio/wav"),
    "video": ("mp4", "video/mp4"),
}
"""media_type -> (file extension, media type of the artifact)."""


class MediaParams(BaseModel):
    """Parameters of a ``media`` job: create an image, audio or video file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        default="Media", min_length=1, max_length=100, description="The media item's name."
    )
    media_type: MediaType = Field(
        default="image", description='The kind of file to create: "image", "audio" or "video".'
    )
    fail_at_step: int | None = Field(
        default=None,
        ge=1,
        le=TOTAL_STEPS,
        description=f"For demos and tests: fail the job at this step (1-{TOTAL_STEPS}).",
        json_schema_extra=ADVANCED,
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")
    return slug[:60] or "media"


def _writer(media_type: MediaType, path: Path, name: str) -> Callable[[], object]:
    if media_type == "image":
        return partial(write_png, path, text=name)
    if media_type == "audio":
        return partial(write_wav, path, seconds=1.0)
    return partial(write_mp4, path, text=name, seconds=2.0)


async def run_media(ctx: JobContext, params: MediaParams, *, speed: float = 1.0) -> dict[str, Any]:
    """The ``media`` handler's body, at ``speed`` times the real pace."""
    pace = Pace(speed)
    extension, content_type = EXTENSIONS[params.media_type]
    stored = f"media.{extension}"
    filename = f"{_slug(params.name)}.{extension}"
    steps = (
        ("Preparing", f"Preparing {params.media_type}"),
        (f"Generating {params.media_type}", f"Generating {params.media_type}"),
        ("Writing file", f"Writing {filename}"),
        ("Saving", "Saving media"),
    )
    size = 0
    for number, (step_name, message) in enumerate(steps, start=1):
        ctx.progress(
            step=number, total_steps=TOTAL_STEPS, step_name=step_name, message=f"{message}..."
        )
        ctx.log(f"{message}: {params.name}", step=number)
        if params.fail_at_step == number:
            await pace.sleep(ctx, STEP_SECONDS / 2)
            raise JobFailed(f"Pipeline error: {step_name} failed")
        if number == FILE_STEP:
            path = ctx.artifact_path(stored)
            await pace.work(ctx, STEP_SECONDS, _writer(params.media_type, path, params.name))
            size = path.stat().st_size
            ctx.set_artifact(path, content_type, filename)
        else:
            await pace.sleep(ctx, STEP_SECONDS)
    return {
        "mediaId": str(uuid.uuid4()),
        "name": params.name,
        "media_type": params.media_type,
        "filename": filename,
        "content_type": content_type,
        "size_bytes": size,
    }


__all__ = ["EXTENSIONS", "MediaParams", "run_media"]
