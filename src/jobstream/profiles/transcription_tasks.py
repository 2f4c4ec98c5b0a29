"""Seed 003: transcription tasks with named states and an ETA.

- ``POST /api/v1/tasks`` ``{"source_url", "language"}`` (both optional) → ``{"task_id": "..."}``:
  a ``task`` job (downloading → transcribing → finalizing). ``GET /api/v1/tasks/{task_id}`` is
  the task's details (the seed's client fetches them after ``complete``).
- ``GET /api/v1/sse/tasks/{task_id}/progress`` with ``Authorization: Bearer`` (the seed uses an
  ``EventSource`` polyfill that sends headers):

  - ``event: progress`` ``{"task_id", "state", "progress", "estimated_time", "updated_at"}`` at
    once and on every change; ``state`` is the task's (``queued`` before it starts,
    ``downloading``, ``transcribing``, ``finalizing``), ``estimated_time`` the server's ETA
    rounded to whole seconds (``null`` while unknown), ``updated_at`` ISO 8601;
  - ``event: complete`` ``{"state": "success"}`` (``"failure"`` with ``error``, or
    ``"cancelled"``), then the stream closes;
  - ``event: error`` ``{"error": "Task not found"}`` for an unknown task or another user's, then
    the stream closes (status 200, as the seed documents; a missing token is still 401);
  - ``event: timeout`` ``{"message": "Stream timeout"}`` at the stream time limit
    (``JOBSTREAM_STREAM_TIMEOUT_SECONDS``), then the stream closes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import Response

from jobstream import codec
from jobstream.jobs.task import TaskParams
from jobstream.models import Event, EventType, Job, JobStatus, isoformat
from jobstream.server.deps import RuntimeDep, StreamUserDep, UserDep
from jobstream.server.routes.jobs import json_response
from jobstream.service import JobNotFound
from jobstream.streams.sse import PING, SSE_HEADERS, SSEResponse, sse_frame

TAG = "profile 003: transcription tasks"
KIND = "task"
FRAME_CACHE = "profile-003"
NOT_FOUND = sse_frame(codec.dumps({"error": "Task not found"}), event="error")
TIMEOUT = sse_frame(codec.dumps({"message": "Stream timeout"}), event="timeout")
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "A Server-Sent Events stream"}
}
_OUTCOME = {
    JobStatus.COMPLETED: "success",
    JobStatus.FAILED: "failure",
    JobStatus.CANCELLED: "cancelled",
}


def _eta(seconds: Any) -> int | None:
    return None if seconds is None else round(float(seconds))


def _state(job: Job) -> str:
    return job.state or job.status.value


def _progress_body(
    task_id: str, state: str, progress: Any, eta: Any, updated: str | None
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "state": state,
        "progress": round(float(progress or 0.0), 2),
        "estimated_time": _eta(eta),
        "updated_at": updated,
    }


def _job_progress(job: Job) -> bytes:
    body = _progress_body(
        job.id, _state(job), job.progress, job.eta_seconds, isoformat(job.updated_at)
    )
    return sse_frame(codec.dumps(body), event="progress")


def _event_progress(event: Event) -> bytes:
    data = event.data
    state = data.get("state") or JobStatus.RUNNING.value
    body = _progress_body(
        event.job_id, state, data.get("progress"), data.get("eta_seconds"), isoformat(event.ts)
    )
    return sse_frame(codec.dumps(body), event="progress")


def _complete(status: JobStatus, error: str | None) -> bytes:
    body: dict[str, Any] = {"state": _OUTCOME[status]}
    if status is JobStatus.FAILED:
        body["error"] = error
    return sse_frame(codec.dumps(body), event="complete")


def _event_complete(event: Event) -> bytes:
    status = JobStatus(event.type.value)
    return _complete(status, event.data.get("message"))


def task_details(job: Job) -> dict[str, Any]:
    """The task as ``GET /api/v1/tasks/{id}`` shows it; a finished task's ``state`` is its
    outcome (``success``, ``failure``, ``cancelled``), as in the ``complete`` event."""
    state = _OUTCOME[job.status] if job.finished else _state(job)
    return {
        **_progress_body(job.id, state, job.progress, job.eta_seconds, isoformat(job.updated_at)),
        "status": job.status.value,
        "message": job.message,
        "result": job.result,
        "error": job.error,
        "created_at": isoformat(job.created_at),
        "finished_at": isoformat(job.finished_at),
    }


class TaskProgressEvents:
    """Encoder of one ``/api/v1/sse/tasks/{id}/progress`` stream."""

    def __init__(self) -> None:
        self._job: Job | None = None

    def snapshot(self, job: Job) -> bytes:
        self._job = job
        if job.finished:
            return _complete(job.status, job.error or job.message)
        return _job_progress(job)

    def event(self, event: Event) -> bytes | None:
        if self._job is not None:
            self._job = self._job.apply(event)
        frame: bytes
        if event.type is EventType.PROGRESS:
            frame = event.frame(FRAME_CACHE, _event_progress)
            return frame
        if event.type.terminal:
            frame = event.frame(FRAME_CACHE, _event_complete)
            return frame
        if event.type is EventType.STATUS_CHANGE and self._job is not None:
            return _job_progress(self._job)  # queued -> running, or re-queued after a restart
        return None

    def ping(self) -> bytes:
        return PING

    def timeout(self) -> bytes:
        return TIMEOUT

    def ends_with(self, event: Event) -> bool:
        return event.type.terminal


router = APIRouter(tags=[TAG])


@router.post("/api/v1/tasks", summary="Create a transcription task (seed 003)")
async def create_task(
    rt: RuntimeDep, user: UserDep, body: Annotated[TaskParams | None, Body()] = None
) -> dict[str, str]:
    """``{"source_url", "language"}`` (both optional) → ``{"task_id": "...", "state"}``."""
    params = (body or TaskParams()).model_dump(mode="json")
    job = await rt.jobs.submit(user, KIND, params)
    return {"task_id": job.id, "state": _state(job)}


@router.get("/api/v1/tasks/{task_id}", summary="A task's details (seed 003)")
async def get_task(task_id: str, rt: RuntimeDep, user: UserDep) -> Response:
    """State, progress, ETA, and the transcript once it succeeded; 404 if unknown."""
    job = await rt.jobs.get(user, task_id, kind=KIND)
    return json_response(task_details(job))


@router.get(
    "/api/v1/sse/tasks/{task_id}/progress",
    summary="SSE: a task's progress, then complete (seed 003)",
    response_class=Response,
    responses=SSE_RESPONSE,
)
async def task_progress(task_id: str, rt: RuntimeDep, user: StreamUserDep) -> Response:
    """``progress`` at once and on each change; ``complete`` and close when the task ends;
    ``error`` ("Task not found") for an unknown or foreign task; ``timeout`` at the limit."""
    try:
        job = await rt.jobs.get_stored(user, task_id, kind=KIND)
    except JobNotFound:
        return Response(NOT_FOUND, headers=SSE_HEADERS)
    handle = await rt.hub.open(user.sub, "sse", job_id=task_id)
    stream = rt.hub.job_stream(handle, job, None, TaskProgressEvents())
    return SSEResponse(stream, rt.hub.close, retry_ms=rt.settings.sse_retry_ms)


__all__ = ["TAG", "TaskProgressEvents", "router", "task_details"]
