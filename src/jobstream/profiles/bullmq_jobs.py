"""Seed 001: character and media jobs with BullMQ-style ``job_update`` messages.

- ``POST /api/v1/characters/queue`` ``{"name", "age"}`` and ``POST /api/v1/media/queue``
  ``{"name", "media_type"}`` (every field optional) answer ``{"data": {"jobId": "..."}}``.
- ``GET /api/v1/sse/jobs/character/{jobId}`` and ``GET /api/v1/sse/jobs/media/{jobId}``, with
  ``Authorization: Bearer``: unnamed events (no ``event:`` line), each one ``data:`` line
  ``{"type": "job_update", "jobId", "status", "progress", "result", "failedReason"}``.

Statuses are BullMQ's: ``waiting`` (queued), ``active`` (running), ``completed``, ``failed``; a
cancelled job ends ``failed`` with ``failedReason: "cancelled"``, as a BullMQ job removed while
active would. ``progress`` is 0-100; a completed character's ``result`` holds ``characterId``.

The seed's hook reads the body with ``fetch`` and splits each network chunk on newlines, so every
event must arrive in one chunk: ``SSEResponse`` writes each wake-up's events in a single send and
an event's ``data:`` line is one line of JSON. Every connection first gets the current state (the
seed's component reconnects after every update), and the stream closes after the terminal one.
A job of the other kind (a character id under ``/media/``) is not found (404), like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import Response

from jobstream import codec
from jobstream.jobs.character import CharacterParams
from jobstream.jobs.media import MediaParams
from jobstream.models import Event, EventType, Job, JobStatus
from jobstream.server.auth import Principal
from jobstream.server.deps import RuntimeDep, StreamUserDep, UserDep
from jobstream.server.runtime import Runtime
from jobstream.streams.sse import PING, SSEResponse, sse_frame

TAG = "profile 001: BullMQ jobs"
FRAME_CACHE = "profile-001"
BULLMQ_STATUS = {
    JobStatus.QUEUED: "waiting",
    JobStatus.RUNNING: "active",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "failed",
}
CANCELLED_REASON = "cancelled"
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "A Server-Sent Events stream"}
}


def _percent(value: Any) -> float:
    return round(float(value or 0.0), 2)


def _update(
    job_id: str,
    status: str,
    progress: float,
    result: Any = None,
    failed_reason: str | None = None,
) -> bytes:
    body = {
        "type": "job_update",
        "jobId": job_id,
        "status": status,
        "progress": progress,
        "result": result,
        "failedReason": failed_reason,
    }
    return sse_frame(codec.dumps(body))


def _job_update(job: Job) -> bytes:
    status = BULLMQ_STATUS[job.status]
    if job.status is JobStatus.COMPLETED:
        return _update(job.id, status, 100.0, result=job.result)
    if job.status is JobStatus.CANCELLED:
        return _update(job.id, status, _percent(job.progress), failed_reason=CANCELLED_REASON)
    if job.status is JobStatus.FAILED:
        reason = job.error or job.message or "failed"
        return _update(job.id, status, _percent(job.progress), failed_reason=reason)
    return _update(job.id, status, _percent(job.progress))


def _progress_update(event: Event) -> bytes:
    return _update(event.job_id, "active", _percent(event.data.get("progress")))


class JobUpdates:
    """Encoder of one ``/api/v1/sse/jobs/...`` stream: the current state, then each change."""

    def __init__(self) -> None:
        self._job: Job | None = None

    def snapshot(self, job: Job) -> bytes:
        self._job = job
        return _job_update(job)

    def event(self, event: Event) -> bytes | None:
        if self._job is None:
            return None
        self._job = self._job.apply(event)
        if event.type is EventType.PROGRESS:
            frame: bytes = event.frame(FRAME_CACHE, _progress_update)
            return frame
        if event.type is EventType.STATUS_CHANGE or event.type.terminal:
            return _job_update(self._job)
        return None  # BullMQ job logs are not part of the seed's messages

    def ping(self) -> bytes:
        return PING

    def timeout(self) -> None:
        return None

    def ends_with(self, event: Event) -> bool:
        return event.type.terminal


async def _queue(rt: Runtime, user: Principal, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    job = await rt.jobs.submit(user, kind, params)
    return {"data": {"jobId": job.id}}


async def _stream(rt: Runtime, user: Principal, job_id: str, kind: str) -> Response:
    job = await rt.jobs.get_stored(user, job_id, kind=kind)
    handle = await rt.hub.open(user.sub, "sse", job_id=job_id)
    stream = rt.hub.job_stream(handle, job, None, JobUpdates())
    return SSEResponse(stream, rt.hub.close)


router = APIRouter(tags=[TAG])


@router.post("/api/v1/characters/queue", summary="Queue a character job (seed 001)")
async def queue_character(
    rt: RuntimeDep, user: UserDep, body: Annotated[CharacterParams | None, Body()] = None
) -> dict[str, Any]:
    """Create a character: ``{"name", "age"}`` → ``{"data": {"jobId": "..."}}``."""
    params = (body or CharacterParams()).model_dump(mode="json")
    return await _queue(rt, user, "character", params)


@router.post("/api/v1/media/queue", summary="Queue a media job (seed 001)")
async def queue_media(
    rt: RuntimeDep, user: UserDep, body: Annotated[MediaParams | None, Body()] = None
) -> dict[str, Any]:
    """Create an image, audio or video file: ``{"name", "media_type"}`` →
    ``{"data": {"jobId": "..."}}``."""
    params = (body or MediaParams()).model_dump(mode="json")
    return await _queue(rt, user, "media", params)


@router.get(
    "/api/v1/sse/jobs/character/{job_id}",
    summary="SSE: job_update messages of a character job (seed 001)",
    response_class=Response,
    responses=SSE_RESPONSE,
)
async def character_updates(job_id: str, rt: RuntimeDep, user: StreamUserDep) -> Response:
    """Unnamed ``job_update`` events: the current state, each change, then close."""
    return await _stream(rt, user, job_id, "character")


@router.get(
    "/api/v1/sse/jobs/media/{job_id}",
    summary="SSE: job_update messages of a media job (seed 001)",
    response_class=Response,
    responses=SSE_RESPONSE,
)
async def media_updates(job_id: str, rt: RuntimeDep, user: StreamUserDep) -> Response:
    """Unnamed ``job_update`` events: the current state, each change, then close."""
    return await _stream(rt, user, job_id, "media")


__all__ = ["BULLMQ_STATUS", "TAG", "JobUpdates", "router"]
