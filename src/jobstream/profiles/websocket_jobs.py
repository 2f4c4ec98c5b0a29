"""Seed 004: the WebSocket job stream (``/ws/jobs/{id}``, ``/ws/jobs``) and its REST routes.

Messages are ``{"type", "job_id", "seq", "data"}`` with the seed's names: ``progress``
(``current_step``, ``total_steps``, ``step_name``, ``percent`` as an int), ``status_change``
(``processing`` for running), ``completed`` (``output_path`` = ``/api/jobs/{id}/download``,
``elapsed_seconds``, ``page_count``), ``error`` and ``cancelled``. A job's end is a status change
followed by its result message, both carrying the terminal event's ``seq``. Everything else
(auth, caps, heartbeat, idle limit, resume) is the shared WebSocket lifecycle.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import Response

from jobstream import codec
from jobstream.models import Event, EventType, Job, JobStatus
from jobstream.server.auth import Principal
from jobstream.server.deps import RuntimeDep, UserDep, runtime
from jobstream.server.links import Links, LinksDep, links_for
from jobstream.server.routes.jobs import json_response, result_response
from jobstream.streams.ws import Plan, int_param, run_websocket

TAG = "profile 004: websocket jobs"
_STATUS = {"running": "processing"}


def seed_status(status: str | None) -> str:
    """The seed's name of a status; ``None`` (before the first status) is ``queued``."""
    return "queued" if status is None else _STATUS.get(status, status)


def download_path(job_id: str) -> str:
    return f"/api/jobs/{job_id}/download"


def _message(type_: str, job_id: str, seq: int, data: dict[str, Any]) -> str:
    return codec.dumps_str({"type": type_, "job_id": job_id, "seq": seq, "data": data})


def _progress(job_id: str, seq: int, source: Job | dict[str, Any]) -> str:
    get = source.get if isinstance(source, dict) else lambda key: getattr(source, key)
    # The seed's message type has numbers and a string here, never null.
    return _message(
        "progress",
        job_id,
        seq,
        {
            "current_step": get("current_step") or 0,
            "total_steps": get("total_steps") or 0,
            "step_name": get("step_name") or get("state") or "",
            "percent": int(get("progress") or 0),
        },
    )


def _ending(job_id: str, seq: int, type_: EventType, data: dict[str, Any], base: str) -> list[str]:
    """The seed's end of a job: ``status_change`` to the final status, then the outcome."""
    new = type_.value
    messages = [
        _message("status_change", job_id, seq, {"old_status": "processing", "new_status": new})
    ]
    if type_ is EventType.COMPLETED:
        result = data.get("result")
        body = {
            "output_path": base + download_path(job_id),
            "elapsed_seconds": data.get("elapsed_seconds"),
            "page_count": data.get(
                "page_count", result.get("page_count") if isinstance(result, dict) else None
            ),
        }
        messages.append(_message("completed", job_id, seq, body))
    elif type_ is EventType.FAILED:
        messages.append(_message("error", job_id, seq, {"message": data.get("message")}))
    else:
        messages.append(_message("cancelled", job_id, seq, {"message": data.get("message")}))
    return messages


class SeedJobMessages:
    """Encoder for ``/ws/jobs/{id}``: the current state first, live messages, end after the
    terminal message (with seq, so a client can resume). A new job (its first event, status
    ``None`` to ``queued``) is announced as ``status_change`` ``queued`` to ``queued``: both
    fields are always one of the seed's statuses."""

    def __init__(self, links: Links) -> None:
        self._base = links.base
        self._cache = f"seed-004{links.base}"

    def _build(self, event: Event) -> list[str] | None:
        data = event.data
        if event.type is EventType.PROGRESS:
            return [_progress(event.job_id, event.seq, data)]
        if event.type is EventType.STATUS_CHANGE:
            body = {
                "old_status": seed_status(data.get("old_status")),
                "new_status": seed_status(data.get("new_status")),
            }
            return [_message("status_change", event.job_id, event.seq, body)]
        if event.type.terminal:
            return _ending(event.job_id, event.seq, event.type, data, self._base)
        return None

    def snapshot(self, job: Job) -> list[str]:
        if job.finished:
            data: dict[str, Any] = {"message": job.error or job.message}
            if job.status is JobStatus.COMPLETED:
                result = job.result if isinstance(job.result, dict) else {}
                elapsed = None
                if job.finished_at and job.started_at:
                    elapsed = round((job.finished_at - job.started_at).total_seconds(), 3)
                data = {
                    "result": job.result,
                    "elapsed_seconds": elapsed,
                    "page_count": result.get("page_count"),
                }
            return _ending(job.id, job.seq, EventType(job.status.value), data, self._base)[1:]
        return [_progress(job.id, job.seq, job)]

    def event(self, event: Event) -> list[str] | None:
        built: list[str] | None = event.frame(self._cache, self._build)
        return built

    def ping(self) -> None:
        return None

    def timeout(self) -> None:
        return None

    def ends_with(self, event: Event) -> bool:
        return event.type.terminal


class SeedFeedMessages(SeedJobMessages):
    """Encoder for ``/ws/jobs``: every job the caller may see; stays open."""

    def feed_snapshot(self, jobs: list[Job], position: int | None) -> None:
        return None  # the seed's /ws/jobs sends live messages only

    def ends_with(self, event: Event) -> bool:
        return False


router = APIRouter(tags=[TAG])


@router.websocket("/ws/jobs/{job_id}")
async def job_socket(websocket: WebSocket, job_id: str) -> None:
    rt = runtime(websocket)

    async def plan(principal: Principal) -> Plan:
        await rt.jobs.get_stored(principal, job_id)
        encoder = SeedJobMessages(links_for(websocket))
        return Plan(job_id, encoder, after_seq=int_param(websocket, "after_seq"))

    await run_websocket(websocket, rt, plan)


@router.websocket("/ws/jobs")
async def jobs_socket(websocket: WebSocket) -> None:
    async def plan(principal: Principal) -> Plan:
        after = int_param(websocket, "after_cursor")
        return Plan(None, SeedFeedMessages(links_for(websocket)), after_cursor=after)

    await run_websocket(websocket, runtime(websocket), plan)


@router.get("/api/jobs/{job_id}", summary="A job (seed 004's REST route)")
async def get_job(job_id: str, rt: RuntimeDep, user: UserDep, links: LinksDep) -> Response:
    job = await rt.jobs.get(user, job_id)
    body = links.public_job(job)
    body["status"] = seed_status(job.status.value)
    return json_response(body)


@router.get("/api/jobs/{job_id}/download", summary="A job's output file (seed 004)")
async def download(job_id: str, rt: RuntimeDep, user: UserDep) -> Response:
    job = await rt.jobs.get(user, job_id)
    return result_response(job, rt.settings.data_dir)


__all__ = ["SeedFeedMessages", "SeedJobMessages", "router"]
