"""Jobs: the kinds a server runs, submit, list, a job's snapshot (the polling fallback, with
ETag and long-poll), cancel, and the result download."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from jobstream import codec
from jobstream.artifacts import resolve_stored
from jobstream.models import Job, JobStatus
from jobstream.server.auth import Principal
from jobstream.server.deps import PollUserDep, RuntimeDep, UserDep
from jobstream.server.links import API, LinksDep
from jobstream.server.runtime import Runtime
from jobstream.service import JobConflict

router = APIRouter(prefix=API, tags=["jobs"])


class SubmitJob(BaseModel):
    kind: str = Field(description="A registered job kind, e.g. video, pdf, task")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters")


def etag(job: Job) -> str:
    return f'"{job.id}.{job.seq}{".c" if job.cancel_requested else ""}"'


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        codec.dumps(body), status_code=status_code, media_type="application/json", headers=headers
    )


@router.get("/kinds", summary="The job kinds this server runs")
async def kinds(rt: RuntimeDep, user: UserDep) -> list[dict[str, Any]]:
    return [
        {
            "name": kind.name,
            "description": kind.description,
            "params_schema": kind.params.model_json_schema(),
            "cost": kind.cost,
            "external": kind.external,
        }
        for kind in rt.registry
    ]


@router.post("/jobs", status_code=202, summary="Submit a job")
async def submit(body: SubmitJob, rt: RuntimeDep, user: UserDep, links: LinksDep) -> Response:
    job = await rt.jobs.submit(user, body.kind, body.params)
    return json_response(links.public_job(job), 202, {"Location": links.job(job.id)["self"]})


@router.get("/jobs", summary="The caller's jobs, newest first")
async def list_jobs(
    rt: RuntimeDep,
    user: UserDep,
    links: LinksDep,
    status: JobStatus | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Response:
    page = await rt.jobs.list(user, status=status, kind=kind, limit=limit, cursor=cursor)
    return json_response(
        {"items": [links.public_job(j) for j in page.items], "next_cursor": page.next_cursor}
    )


@router.get("/jobs/{job_id}", summary="A job's snapshot (ETag; long-poll with ?wait=&after_seq=)")
async def get_job(
    job_id: str,
    rt: RuntimeDep,
    user: PollUserDep,
    links: LinksDep,
    wait: Annotated[float | None, Query(ge=0, description="seconds to wait for a change")] = None,
    after_seq: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    job = await rt.jobs.get(user, job_id)
    if wait and not job.finished:
        threshold = after_seq if after_seq is not None else job.seq
        if job.seq <= threshold:
            job = await _long_poll(
                rt, user, job, threshold, min(wait, rt.settings.max_wait_seconds)
            )
    tag = etag(job)
    if if_none_match is not None and tag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": tag})
    return json_response(links.public_job(job), headers={"ETag": tag, "Cache-Control": "no-cache"})


@router.post("/jobs/{job_id}/cancel", status_code=202, summary="Request cancellation (idempotent)")
async def cancel(job_id: str, rt: RuntimeDep, user: UserDep, links: LinksDep) -> Response:
    job = await rt.jobs.cancel(user, job_id)
    return json_response(links.public_job(job), 202)


@router.get(
    "/jobs/{job_id}/result", summary="The job's output file (Range supported) or JSON result"
)
async def result(job_id: str, rt: RuntimeDep, user: UserDep) -> Response:
    job = await rt.jobs.get(user, job_id)
    return result_response(job, rt.settings.data_dir)


def result_response(job: Job, data_dir: Path) -> Response:
    """The artifact file or JSON result of a completed job; 409 otherwise."""
    if job.status is not JobStatus.COMPLETED:
        if job.finished:
            raise JobConflict(f"job {job.id!r} {job.status.value}; it has no result")
        raise JobConflict(
            f"job {job.id!r} is {job.status.value}; its result is available once it completes"
        )
    if job.artifact is not None:
        path = resolve_stored(data_dir, job.artifact.path)
        if path is None:
            raise JobConflict(f"the output file of job {job.id!r} is outside the data folder")
        if not path.is_file():
            raise JobConflict(f"the output file of job {job.id!r} is no longer available")
        return FileResponse(
            path,
            media_type=job.artifact.media_type,
            filename=job.artifact.filename,
            content_disposition_type="inline",
        )
    return json_response({"job_id": job.id, "result": job.result})


async def _long_poll(rt: Runtime, user: Principal, job: Job, after_seq: int, wait: float) -> Job:
    """Wait until the job moves past ``after_seq``, ``wait`` seconds pass, or the server stops."""
    handle = await rt.hub.open(user.sub, "poll", job_id=job.id)
    subscriber = handle.subscriber
    try:
        fresh = await rt.jobs.get(user, job.id)
        if fresh.seq > after_seq or fresh.finished:
            return fresh
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while not subscriber.closed:
                    await subscriber.wait()
                    subscriber.take_flags()
                    if any(e.seq > after_seq for e in subscriber.drain()):
                        break
    finally:
        await rt.hub.close(handle)
    return await rt.jobs.get(user, job.id)


__all__ = ["SubmitJob", "etag", "json_response", "result_response", "router"]
