"""Seed 000: a video queue with ``POST /generate``, ``GET /stream/status/{job_id}`` and
``GET /result/{job_id}``.

The seed's React component opens ``new EventSource('/stream/status/{id}')`` (same origin, no
header: under ``jwt`` auth the browser's ``jobstream_token`` cookie carries the token) and
listens for two named events:

- ``event: progress``, ``data: {"status", "progress", "progress_info", ...}`` while the job is
  queued or running: at once on connect (the current state), on every change, and again every
  few seconds while nothing changes (the seed's "periodic update"; it doubles as the heartbeat).
  ``progress`` is always a number: the component calls ``progress.toFixed(1)``.
- ``event: status``, ``data: {"status": "completed" | "failed" | "cancelled", "message"}`` when
  the job ends; then the stream closes (the component closes its ``EventSource`` on it).

Only ``video`` jobs are served here; another kind's id answers 404, as a missing job does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ConfigDict

from jobstream import codec
from jobstream.jobs.video import VideoParams
from jobstream.models import Event, EventType, Job, JobStatus
from jobstream.server.deps import RuntimeDep, StreamUserDep, UserDep
from jobstream.server.links import Links, LinksDep
from jobstream.server.routes.jobs import result_response
from jobstream.streams.sse import PING, SSEResponse, sse_frame

TAG = "profile 000: video queue"
KIND = "video"
PERIODIC_SECONDS = 3.0
"""The longest a stream of a live job goes without a ``progress`` event."""
FRAME_CACHE = "profile-000"
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "A Server-Sent Events stream"}
}


class GenerateRequest(VideoParams):
    """The job details of a video: ``prompt`` and optional options. Fields the video job does not
    know are ignored (the seed posts whatever its form holds)."""

    model_config = ConfigDict(extra="ignore", strict=True)


def result_path(job_id: str) -> str:
    return f"/result/{job_id}"


def _progress_info(
    status: str, step: int | None, total: int | None, step_name: str | None, message: str | None
) -> str:
    text = message or step_name or ""
    if step and total:
        return f"Step {step}/{total}: {text}" if text else f"Step {step}/{total}"
    if text:
        return text
    return "Waiting in queue" if status == JobStatus.QUEUED.value else "Starting"


def _progress_frame(job_id: str, status: str, source: dict[str, Any]) -> bytes:
    body = {
        "job_id": job_id,
        "status": status,
        "progress": round(float(source.get("progress") or 0.0), 2),
        "progress_info": _progress_info(
            status,
            source.get("current_step"),
            source.get("total_steps"),
            source.get("step_name"),
            source.get("message"),
        ),
        "current_step": source.get("current_step"),
        "total_steps": source.get("total_steps"),
        "step_name": source.get("step_name"),
        "eta_seconds": source.get("eta_seconds"),
    }
    return sse_frame(codec.dumps(body), event="progress")


def _event_progress_frame(event: Event) -> bytes:
    # A progress event carries the whole progress view, and only a running job reports it.
    return _progress_frame(event.job_id, JobStatus.RUNNING.value, event.data)


def _job_progress_frame(job: Job) -> bytes:
    return _progress_frame(
        job.id,
        job.status.value,
        {
            "progress": job.progress,
            "current_step": job.current_step,
            "total_steps": job.total_steps,
            "step_name": job.step_name,
            "message": job.message,
            "eta_seconds": job.eta_seconds,
        },
    )


def _status_frame(job: Job, links: Links) -> bytes:
    """The final ``event: status`` of a finished job."""
    body: dict[str, Any] = {"job_id": job.id, "status": job.status.value}
    if job.status is JobStatus.COMPLETED:
        body["message"] = "Video ready"
        body["progress"] = 100.0
        body["result_url"] = links.url(result_path(job.id))
    else:
        body["message"] = job.error or job.message or f"Job {job.status.value}"
        body["progress"] = round(float(job.progress), 2)
    return sse_frame(codec.dumps(body), event="status")


class VideoQueueEvents:
    """Encoder of one ``/stream/status`` stream. It keeps the job's state (one encoder per
    stream) to send it again when nothing changed for a while, and to skip repeats."""

    def __init__(self, links: Links) -> None:
        self._links = links
        self._job: Job | None = None
        self._last: bytes | None = None

    def _changed(self, frame: bytes) -> bytes | None:
        if frame == self._last:
            return None
        self._last = frame
        return frame

    def snapshot(self, job: Job) -> bytes | None:
        self._job = job
        if job.finished:
            return _status_frame(job, self._links)
        return self._changed(_job_progress_frame(job))

    def event(self, event: Event) -> bytes | None:
        if self._job is not None:
            self._job = self._job.apply(event)
        job = self._job
        if event.type.terminal:
            return _status_frame(job, self._links) if job is not None else None
        if event.type is EventType.PROGRESS:
            frame: bytes = event.frame(FRAME_CACHE, _event_progress_frame)
            return self._changed(frame)
        if event.type is EventType.STATUS_CHANGE and job is not None:
            return self._changed(_job_progress_frame(job))
        return None  # log lines: their text is already the step's message

    def ping(self) -> bytes:
        return self._last if self._last is not None else PING

    def timeout(self) -> None:
        return None  # the seed has no such event: the stream just closes

    def ends_with(self, event: Event) -> bool:
        return event.type.terminal


router = APIRouter(tags=[TAG])


@router.post("/generate", summary="Queue a video job (seed 000)")
async def generate(body: GenerateRequest, rt: RuntimeDep, user: UserDep) -> dict[str, str]:
    """Queue a ``video`` job from its details; answers ``{"job_id": "..."}``. The job costs
    the owner the video kind's credits (402 when too few)."""
    job = await rt.jobs.submit(user, KIND, body.model_dump(mode="json"))
    return {"job_id": job.id}


@router.get(
    "/stream/status/{job_id}",
    summary="SSE: the job's progress, then its final status (seed 000)",
    response_class=Response,
    responses=SSE_RESPONSE,
)
async def stream_status(
    job_id: str, rt: RuntimeDep, user: StreamUserDep, links: LinksDep
) -> Response:
    """``event: progress`` at once, on every change and every few seconds; ``event: status``
    when the job ends, then the stream closes. 404 for an unknown job."""
    job = await rt.jobs.get_stored(user, job_id, kind=KIND)
    every = min(PERIODIC_SECONDS, rt.settings.sse_ping_seconds)
    handle = await rt.hub.open(user.sub, "sse", job_id=job_id, ping_every=every)
    stream = rt.hub.job_stream(handle, job, None, VideoQueueEvents(links))
    return SSEResponse(stream, rt.hub.close, retry_ms=rt.settings.sse_retry_ms)


@router.get(
    "/result/{job_id}",
    summary="The finished video (seed 000)",
    response_class=Response,
    responses={200: {"content": {"video/mp4": {}}, "description": "The MP4 (Range works)"}},
)
async def result(job_id: str, rt: RuntimeDep, user: UserDep) -> Response:
    """The video file (``video/mp4``); 404 for an unknown job, 409 while it is not done."""
    job = await rt.jobs.get(user, job_id, kind=KIND)
    return result_response(job, rt.settings.data_dir)


__all__ = ["TAG", "GenerateRequest", "VideoQueueEvents", "router"]
