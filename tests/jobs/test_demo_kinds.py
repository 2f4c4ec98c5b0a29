"""The demo kinds' handlers, run against a recording stand-in for ``JobContext``.

``RecordingContext`` has the same public methods, with the same signatures (checked below), as
the real ``JobContext``; it records each call instead of reporting it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import av
import pytest
from PIL import Image
from pydantic import BaseModel, ValidationError

from jobstream.jobs import (
    DEMO_KINDS,
    VIDEO_COST,
    CharacterParams,
    MediaParams,
    PdfParams,
    TaskParams,
    VideoParams,
    register_demo_kinds,
)
from jobstream.jobs.media_files import write_mp4, write_png
from jobstream.jobs.task import TASK_ERRORS
from jobstream.worker.context import JobCancelled, JobContext, JobFailed
from jobstream.worker.registry import Registry

FAST = 10_000.0

SEED_002_MESSAGES = [
    "🔍 Validating request parameters...",
    "📸 Processing reference image...",
    "🤖 Calling Sora 2 API...",
    "⏳ Waiting for AI processing (this may take 2-5 minutes)...",
    "🎬 Rendering video frames...",
]


@dataclass
class Progress:
    percent: float | None
    step: int | None
    total_steps: int | None
    step_name: str | None
    message: str | None
    state: str | None


@dataclass
class RecordingContext:
    artifacts_dir: Path
    cancel_after_progress: int | None = None
    """Request a cancel right after this many progress reports."""
    real_sleep: bool = True
    job_id: str = "job-under-test"
    calls: list[tuple[str, Any]] = field(default_factory=list)
    slept: float = 0.0
    cancel_requested: bool = False

    # -- the JobContext surface ----------------------------------------------------------------

    def raise_if_cancelled(self) -> None:
        if self.cancel_requested:
            raise JobCancelled("cancelled")

    async def sleep(self, seconds: float) -> None:
        self.raise_if_cancelled()
        assert seconds >= 0
        self.slept += seconds
        await asyncio.sleep(seconds if self.real_sleep else 0)
        self.raise_if_cancelled()

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
        self.raise_if_cancelled()
        self.calls.append(
            ("progress", Progress(percent, step, total_steps, step_name, message, state))
        )
        if self.cancel_after_progress is not None and (
            len(self.progresses) >= self.cancel_after_progress
        ):
            self.cancel_requested = True

    def set_state(self, state: str) -> None:
        self.calls.append(("state", state))

    def log(self, message: str, *, level: str = "info", step: int | None = None) -> None:
        self.calls.append(("log", (level, message, step)))

    def artifact_path(self, filename: str) -> Path:
        assert "/" not in filename and filename not in {"", ".", ".."}
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        return self.artifacts_dir / filename

    def set_artifact(self, path: Path, media_type: str, filename: str | None = None) -> None:
        assert path.parent == self.artifacts_dir
        assert path.is_file()
        self.calls.append(("artifact", (path, media_type, filename or path.name)))

    # -- what was recorded -------------------------------------------------------------------

    @property
    def progresses(self) -> list[Progress]:
        return [value for kind, value in self.calls if kind == "progress"]

    @property
    def logs(self) -> list[tuple[str, str, int | None]]:
        return [value for kind, value in self.calls if kind == "log"]

    @property
    def artifacts(self) -> list[tuple[Path, str, str]]:
        return [value for kind, value in self.calls if kind == "artifact"]

    @property
    def states(self) -> list[str]:
        """Distinct states in the order they were entered (from set_state and progress)."""
        seen: list[str] = []
        for kind, value in self.calls:
            state = value if kind == "state" else getattr(value, "state", None)
            if state is not None and (not seen or seen[-1] != state):
                seen.append(state)
        return seen

    @property
    def steps(self) -> list[int]:
        """Distinct steps in the order they were reported."""
        seen: list[int] = []
        for p in self.progresses:
            if p.step is not None and (not seen or seen[-1] != p.step):
                seen.append(p.step)
        return seen


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    register_demo_kinds(registry, speed=FAST)
    return registry


@pytest.fixture
def ctx(tmp_path: Path) -> RecordingContext:
    return RecordingContext(artifacts_dir=tmp_path / "artifacts")


async def run(registry: Registry, kind: str, ctx: RecordingContext, params: dict[str, Any]) -> Any:
    job_kind = registry.get(kind)
    model = job_kind.params.model_validate(params)
    return await job_kind.handler(cast(JobContext, ctx), model)


def assert_percent_monotonic(ctx: RecordingContext) -> None:
    percents = [p.percent for p in ctx.progresses if p.percent is not None]
    assert percents == sorted(percents)
    assert all(0 <= p <= 100 for p in percents)


# -- the test double stays honest ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "progress",
        "set_state",
        "log",
        "sleep",
        "raise_if_cancelled",
        "artifact_path",
        "set_artifact",
    ],
)
def test_recording_context_matches_job_context(name: str) -> None:
    real = inspect.signature(getattr(JobContext, name))
    fake = inspect.signature(getattr(RecordingContext, name))
    assert list(real.parameters) == list(fake.parameters)
    for key, param in real.parameters.items():
        assert fake.parameters[key].kind == param.kind
        assert fake.parameters[key].default == param.default
    assert inspect.iscoroutinefunction(getattr(JobContext, name)) == (
        inspect.iscoroutinefunction(getattr(RecordingContext, name))
    )


# -- registration ----------------------------------------------------------------------------


def test_register_demo_kinds(registry: Registry) -> None:
    assert registry.names() == sorted(DEMO_KINDS)
    expected = {
        "video": VideoParams,
        "pdf": PdfParams,
        "task": TaskParams,
        "character": CharacterParams,
        "media": MediaParams,
    }
    for kind in registry:
        assert kind.params is expected[kind.name]
        assert kind.is_async
        assert kind.on_interrupt == "requeue"
        assert kind.description
        # Seed 002: a video costs 100 credits; everything else is free.
        assert kind.cost == (VIDEO_COST if kind.name == "video" else 0)
    assert VIDEO_COST == 100


@pytest.mark.parametrize("speed", [0, -1, float("nan"), float("inf")])
def test_register_demo_kinds_rejects_bad_speed(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        register_demo_kinds(Registry(), speed=speed)


@pytest.mark.parametrize(
    ("kind", "params", "real_seconds"),
    [
        ("video", {"prompt": "timing"}, 20.0),
        ("pdf", {}, 18.0),
        ("task", {}, 30.0),
        ("character", {}, 5.0),
        ("media", {}, 8.0),
    ],
)
async def test_pace_at_speed_one(
    tmp_path: Path, kind: str, params: dict[str, Any], real_seconds: float
) -> None:
    """At speed 1 the kinds take the seeds' real time (measured as requested sleeps)."""
    registry = Registry()
    register_demo_kinds(registry, speed=1)
    ctx = RecordingContext(artifacts_dir=tmp_path, real_sleep=False)
    await run(registry, kind, ctx, params)
    # A step that writes a file sleeps only what the writing left of its duration.
    assert real_seconds - 1.0 <= ctx.slept <= real_seconds + 1e-9


async def test_speed_divides_sleeps(tmp_path: Path) -> None:
    registry = Registry()
    register_demo_kinds(registry, speed=100)
    ctx = RecordingContext(artifacts_dir=tmp_path, real_sleep=False)
    await run(registry, "character", ctx, {})
    assert ctx.slept == pytest.approx(0.05)


# -- video -----------------------------------------------------------------------------------


async def test_video_steps_and_mp4(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(registry, "video", ctx, {"prompt": "A cat surfing a wave at sunset"})

    assert ctx.steps == [1, 2, 3, 4, 5, 6, 7, 8]
    assert all(p.total_steps == 8 for p in ctx.progresses)
    assert all(p.step_name for p in ctx.progresses)
    messages = [p.message for p in ctx.progresses]
    assert messages[:5] == SEED_002_MESSAGES
    assert all(m and m.endswith("...") for m in messages)
    # one log line per step, carrying the step number, same text
    assert ctx.logs == [("info", m, i) for i, m in enumerate(messages, start=1)]
    assert_percent_monotonic(ctx)

    assert result == {
        "video_path": "video.mp4",
        "duration_seconds": 2.0,
        "frames": 48,
        "fps": 24,
        "width": 320,
        "height": 180,
        "prompt": "A cat surfing a wave at sunset",
        "model": "sora-2",
    }
    [(path, media_type, filename)] = ctx.artifacts
    assert media_type == "video/mp4"
    assert filename == "video.mp4" == path.name
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 48


async def test_video_duration_and_model(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(
        registry,
        "video",
        ctx,
        {
            "prompt": "short one",
            "model": "sora-2-pro",
            "reference_image_url": "https://example.com/ref.jpg",
            "duration_seconds": 0.5,
        },
    )
    assert result["frames"] == 12
    assert result["duration_seconds"] == 0.5
    assert ctx.progresses[2].message == "🤖 Calling Sora 2 Pro API..."


async def test_video_encodes_off_the_event_loop(
    registry: Registry, ctx: RecordingContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> int:
        threads.append(threading.get_ident())
        return write_mp4(*args, **kwargs)

    monkeypatch.setattr("jobstream.jobs.video.write_mp4", spy)
    await run(registry, "video", ctx, {"prompt": "threads"})
    assert threads and threads[0] != threading.get_ident()


@pytest.mark.parametrize("fail_at", [1, 5, 8])
async def test_video_fail_at_step(registry: Registry, ctx: RecordingContext, fail_at: int) -> None:
    with pytest.raises(JobFailed, match=r"^Pipeline error: .+ failed$"):
        await run(registry, "video", ctx, {"prompt": "fail", "fail_at_step": fail_at})
    assert ctx.steps == list(range(1, fail_at + 1))
    assert ctx.logs[-1][2] == fail_at


async def test_video_cancel_stops_at_checkpoint(tmp_path: Path) -> None:
    registry = Registry()
    register_demo_kinds(registry, speed=FAST)
    ctx = RecordingContext(artifacts_dir=tmp_path, cancel_after_progress=3)
    with pytest.raises(JobCancelled):
        await run(registry, "video", ctx, {"prompt": "cancel me"})
    assert ctx.steps == [1, 2, 3]
    assert ctx.artifacts == []


# -- pdf -------------------------------------------------------------------------------------


async def test_pdf_pipeline(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(registry, "pdf", ctx, {})
    assert ctx.steps == list(range(1, 13))
    assert all(p.total_steps == 12 for p in ctx.progresses)
    names = [p.step_name for p in ctx.progresses]
    assert len(set(names)) == 12
    assert names[4] == "AI Upscaling"
    assert names[0] == "PDF extraction"
    assert [step for _, _, step in ctx.logs] == list(range(1, 13))
    assert_percent_monotonic(ctx)

    assert result["page_count"] == 12
    [(path, media_type, _)] = ctx.artifacts
    assert media_type == "application/pdf"
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 12


@pytest.mark.parametrize("pages", [1, 3, 30])
async def test_pdf_page_count_equals_pages(
    registry: Registry, ctx: RecordingContext, pages: int
) -> None:
    result = await run(registry, "pdf", ctx, {"pages": pages})
    assert result["page_count"] == pages
    [(path, _, _)] = ctx.artifacts
    assert len(re.findall(rb"/Type\s*/Page\b", path.read_bytes())) == pages


async def test_pdf_fail_at_step_1(registry: Registry, ctx: RecordingContext) -> None:
    with pytest.raises(JobFailed) as failure:
        await run(registry, "pdf", ctx, {"fail_at_step": 1})
    assert str(failure.value) == "Pipeline error: PDF extraction failed"
    assert ctx.steps == [1]
    assert ctx.artifacts == []


async def test_pdf_fail_at_step_3(registry: Registry, ctx: RecordingContext) -> None:
    with pytest.raises(JobFailed) as failure:
        await run(registry, "pdf", ctx, {"fail_at_step": 3})
    assert ctx.steps == [1, 2, 3]
    assert str(failure.value) == f"Pipeline error: {ctx.progresses[-1].step_name} failed"
    assert ctx.artifacts == []


async def test_pdf_fail_at_step_5_names_ai_upscaling(
    registry: Registry, ctx: RecordingContext
) -> None:
    with pytest.raises(JobFailed, match=r"^Pipeline error: AI Upscaling failed$"):
        await run(registry, "pdf", ctx, {"fail_at_step": 5})


# -- task ------------------------------------------------------------------------------------


async def test_task_states_and_transcript(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(
        registry, "task", ctx, {"source_url": "https://example.com/talk.mp3", "language": "en"}
    )
    assert ctx.states == ["downloading", "transcribing", "finalizing"]
    assert_percent_monotonic(ctx)

    def percents(state: str) -> list[float]:
        return [p.percent for p in ctx.progresses if p.state == state and p.percent is not None]

    assert min(percents("downloading")) == 0 and max(percents("downloading")) < 20
    assert min(percents("transcribing")) == 20 and max(percents("transcribing")) < 90
    assert min(percents("finalizing")) == 90 and max(percents("finalizing")) < 100
    assert len(percents("transcribing")) >= 50  # many small updates, so the ETA has a rate
    assert result["language"] == "en"
    assert result["transcript"]
    assert result["words"] == len(result["transcript"].split())
    assert any(message.startswith("[") for _, message, _ in ctx.logs)  # segments logged


@pytest.mark.parametrize(
    ("fail_at", "state"), [(1, "downloading"), (2, "transcribing"), (3, "finalizing")]
)
async def test_task_fail_at_step(
    registry: Registry, ctx: RecordingContext, fail_at: int, state: str
) -> None:
    with pytest.raises(JobFailed) as failure:
        await run(registry, "task", ctx, {"fail_at_step": fail_at})
    assert str(failure.value) == TASK_ERRORS[fail_at]
    assert ctx.states[-1] == state
    # Halfway through the state, not at its first report.
    assert len([p for p in ctx.progresses if p.state == state]) > 1


async def test_task_other_language(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(registry, "task", ctx, {"language": "pt-BR"})
    assert result["language"] == "pt-BR"
    assert result["words"] > 0


# -- character -------------------------------------------------------------------------------


async def test_character(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(registry, "character", ctx, {"name": "Aria", "age": 31})
    assert result["name"] == "Aria" and result["age"] == 31
    assert isinstance(result["characterId"], str) and len(result["characterId"]) >= 16
    assert len(ctx.steps) >= 3 and ctx.steps == sorted(ctx.steps)
    second = await run(registry, "character", ctx, {})
    assert second["characterId"] != result["characterId"]
    assert second["name"] == "Character" and second["age"] == 25


@pytest.mark.parametrize("kind", ["character", "media"])
async def test_character_and_media_fail_at_step(
    registry: Registry, ctx: RecordingContext, kind: str
) -> None:
    with pytest.raises(JobFailed, match=r"^Pipeline error: .+ failed$") as failure:
        await run(registry, kind, ctx, {"fail_at_step": 2})
    assert ctx.steps == [1, 2]
    assert str(failure.value) == f"Pipeline error: {ctx.progresses[-1].step_name} failed"
    assert ctx.artifacts == []


# -- media -----------------------------------------------------------------------------------


async def test_media_image(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(registry, "media", ctx, {"name": "Sunset photo", "media_type": "image"})
    [(path, media_type, filename)] = ctx.artifacts
    assert media_type == "image/png"
    assert filename == result["filename"] == "Sunset-photo.png"
    assert result["media_type"] == "image" and result["mediaId"]
    with Image.open(path) as image:
        assert image.format == "PNG"


async def test_media_audio(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(registry, "media", ctx, {"media_type": "audio"})
    [(path, media_type, filename)] = ctx.artifacts
    assert media_type == "audio/wav"
    assert filename == result["filename"] == "Media.wav"
    with wave.open(str(path), "rb") as audio:
        assert audio.getnframes() / audio.getframerate() == pytest.approx(1.0)


async def test_media_video(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(registry, "media", ctx, {"name": "clip", "media_type": "video"})
    [(path, media_type, _)] = ctx.artifacts
    assert media_type == "video/mp4"
    assert result["size_bytes"] == path.stat().st_size > 0
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


async def test_media_default_and_odd_names(registry: Registry, ctx: RecordingContext) -> None:
    result = await run(registry, "media", ctx, {"name": "../../etc/passwd 日本"})
    assert result["media_type"] == "image"
    assert "/" not in result["filename"] and result["filename"].endswith(".png")


async def test_media_writes_off_the_event_loop(
    registry: Registry, ctx: RecordingContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> None:
        threads.append(threading.get_ident())
        write_png(*args, **kwargs)

    monkeypatch.setattr("jobstream.jobs.media.write_png", spy)
    await run(registry, "media", ctx, {})
    assert threads and threads[0] != threading.get_ident()


# -- params models ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "params", "field"),
    [
        (VideoParams, {}, "prompt"),
        (VideoParams, {"prompt": ""}, "prompt"),
        (VideoParams, {"prompt": "   "}, "prompt"),
        (VideoParams, {"prompt": "ok", "duration_seconds": 0.1}, "duration_seconds"),
        (VideoParams, {"prompt": "ok", "duration_seconds": 11}, "duration_seconds"),
        (VideoParams, {"prompt": "ok", "fail_at_step": 0}, "fail_at_step"),
        (VideoParams, {"prompt": "ok", "fail_at_step": 9}, "fail_at_step"),
        (VideoParams, {"prompt": "ok", "colour": "red"}, "colour"),
        (PdfParams, {"pages": 0}, "pages"),
        (PdfParams, {"pages": 501}, "pages"),
        (PdfParams, {"pages": "many"}, "pages"),
        (PdfParams, {"fail_at_step": 13}, "fail_at_step"),
        (PdfParams, {"fail_at_step": 0}, "fail_at_step"),
        (PdfParams, {"page": 3}, "page"),
        (TaskParams, {"language": "english!"}, "language"),
        (TaskParams, {"source_url": ""}, "source_url"),
        (TaskParams, {"lang": "en"}, "lang"),
        (CharacterParams, {"name": ""}, "name"),
        (CharacterParams, {"name": "x" * 101}, "name"),
        (CharacterParams, {"age": -1}, "age"),
        (CharacterParams, {"age": 10001}, "age"),
        (CharacterParams, {"age": 3, "class": "mage"}, "class"),
        (MediaParams, {"media_type": "gif"}, "media_type"),
        (MediaParams, {"name": ""}, "name"),
        (MediaParams, {"kind": "image"}, "kind"),
    ],
)
def test_params_reject(model: type[BaseModel], params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        model.model_validate(params)
    assert [e["loc"][0] for e in error.value.errors()] == [field]


def test_params_defaults() -> None:
    assert VideoParams(prompt="x").model_dump() == {
        "prompt": "x",
        "model": "sora-2",
        "reference_image_url": None,
        "duration_seconds": 2.0,
        "fail_at_step": None,
    }
    assert PdfParams().pages == 12 and PdfParams().fail_at_step is None
    assert TaskParams().model_dump() == {
        "source_url": None,
        "language": "en",
        "fail_at_step": None,
    }
    assert CharacterParams().model_dump() == {"name": "Character", "age": 25, "fail_at_step": None}
    assert MediaParams().model_dump() == {
        "name": "Media",
        "media_type": "image",
        "fail_at_step": None,
    }


def test_params_documented() -> None:
    for model in (VideoParams, PdfParams, TaskParams, CharacterParams, MediaParams):
        schema = model.model_json_schema()
        assert schema.get("description")
        assert schema["additionalProperties"] is False
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{model.__name__}.{name} has no description"
