"""The canonical HTTP API (``/api/v1``): jobs, their SSE streams, long-poll, results, health."""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from jobstream import codec
from jobstream.models import Job, JobStatus, monotonic_us
from jobstream.server.auth import Principal
from jobstream.server.deps import Runtime, RuntimeDep, UserDep, runtime
from jobstream.service import JobConflict
from jobstream.streams.sse import CanonicalFeedSSE, CanonicalSSE, SSEResponse
from jobstream.streams.ws import CanonicalFeedWS, CanonicalWS, Plan, int_param, run_websocket

API = "/api/v1"


class SubmitJob(BaseModel):
    kind: str = Field(description="A registered job kind, e.g. video, pdf, task")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters")


class StreamTicket(BaseModel):
    ticket: str
    expires_in: int


def job_links(job_id: str) -> dict[str, str]:
    return {
        "self": f"{API}/jobs/{job_id}",
        "events": f"{API}/jobs/{job_id}/events",
        "ws": f"{API}/jobs/{job_id}/ws",
        "result": f"{API}/jobs/{job_id}/result",
    }


def public_job(job: Job) -> dict[str, Any]:
    body = job.to_public()
    body["links"] = job_links(job.id)
    return body


def etag(job: Job) -> str:
    return f'"{job.id}.{job.seq}{".c" if job.cancel_requested else ""}"'


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        codec.dumps(body), status_code=status_code, media_type="application/json", headers=headers
    )


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    raw = header if header is not None else query
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"Last-Event-ID must be an integer, not {raw!r}") from None
    if value < 0:
        raise ValueError("Last-Event-ID must not be negative")
    return value


def build_router() -> APIRouter:
    router = APIRouter()
    jobs_tag: list[str | Enum] = ["jobs"]

    @router.get(f"{API}/kinds", tags=jobs_tag, summary="The job kinds this server runs")
    async def kinds(rt: RuntimeDep, user: UserDep) -> list[dict[str, Any]]:
        return [
            {
                "name": kind.name,
                "description": kind.description,
                "params_schema": kind.params.model_json_schema(),
                "cost": kind.cost,
            }
            for kind in rt.registry
        ]

    @router.post(f"{API}/jobs", status_code=202, tags=jobs_tag, summary="Submit a job")
    async def submit(body: SubmitJob, rt: RuntimeDep, user: UserDep) -> Response:
        job = await rt.jobs.submit(user, body.kind, body.params)
        rt.metrics.jobs_submitted.labels(kind=job.kind).inc()
        return json_response(public_job(job), 202, {"Location": f"{API}/jobs/{job.id}"})

    @router.get(f"{API}/jobs", tags=jobs_tag, summary="The caller's jobs, newest first")
    async def list_jobs(
        rt: RuntimeDep,
        user: UserDep,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> Response:
        page = await rt.jobs.list(user, status=status, kind=kind, limit=limit, cursor=cursor)
        return json_response(
            {"items": [public_job(j) for j in page.items], "next_cursor": page.next_cursor}
        )

    @router.get(
        f"{API}/jobs/{{job_id}}",
        tags=jobs_tag,
        summary="A job's snapshot (ETag; long-poll with ?wait=&after_seq=)",
    )
    async def get_job(
        job_id: str,
        rt: RuntimeDep,
        user: UserDep,
        wait: Annotated[
            float | None, Query(ge=0, description="seconds to wait for a change")
        ] = None,
        after_seq: Annotated[int | None, Query(ge=0)] = None,
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
        return json_response(public_job(job), headers={"ETag": tag, "Cache-Control": "no-cache"})

    @router.post(
        f"{API}/jobs/{{job_id}}/cancel",
        status_code=202,
        tags=jobs_tag,
        summary="Request cancellation (idempotent)",
    )
    async def cancel(job_id: str, rt: RuntimeDep, user: UserDep) -> Response:
        job = await rt.jobs.cancel(user, job_id)
        return json_response(public_job(job), 202)

    @router.get(
        f"{API}/jobs/{{job_id}}/result",
        tags=jobs_tag,
        summary="The job's output file (Range supported) or JSON result",
    )
    async def result(job_id: str, rt: RuntimeDep, user: UserDep) -> Response:
        job = await rt.jobs.get(user, job_id)
        return result_response(job, rt.settings.data_dir)

    @router.get(
        f"{API}/jobs/{{job_id}}/events",
        tags=["streams"],
        summary="SSE stream of one job (resume with Last-Event-ID)",
    )
    async def job_events(
        job_id: str,
        rt: RuntimeDep,
        user: UserDep,
        last_event_id_header: Annotated[str | None, Header(alias="last-event-id")] = None,
        last_event_id: Annotated[str | None, Query()] = None,
    ) -> Response:
        after = parse_last_event_id(last_event_id_header, last_event_id)
        job = await rt.jobs.get_stored(user, job_id)
        handle = await rt.hub.open(user.sub, "sse", job_id=job_id)
        if after is not None:
            rt.metrics.resumes.labels(transport="sse").inc()
        chunks = rt.hub.job_stream(handle, job, after, CanonicalSSE(public_job))
        return SSEResponse(chunks, handle, rt.hub.close, retry_ms=rt.settings.sse_retry_ms)

    @router.get(
        f"{API}/events",
        tags=["streams"],
        summary="SSE stream of all the caller's jobs (resume with Last-Event-ID)",
    )
    async def all_events(
        rt: RuntimeDep,
        user: UserDep,
        last_event_id_header: Annotated[str | None, Header(alias="last-event-id")] = None,
        last_event_id: Annotated[str | None, Query()] = None,
    ) -> Response:
        after = parse_last_event_id(last_event_id_header, last_event_id)
        owner = user.owner_filter
        encoder = CanonicalFeedSSE(public_job)
        if owner is None:
            handle = await rt.hub.open(user.sub, "sse", everything=True)
        else:
            handle = await rt.hub.open(user.sub, "sse", owner=owner)
        first: list[bytes] = []
        backlog = []
        if after is None:
            cursor = monotonic_us()
            page = await rt.jobs.list(user, limit=100)
            first.append(
                b"id: %d\nevent: snapshot\ndata: %s\n\n"
                % (cursor, codec.dumps({"items": [public_job(j) for j in page.items]}))
            )
        else:
            rt.metrics.resumes.labels(transport="sse").inc()
            backlog = await rt.hub.feed_catch_up(owner, after)
        chunks = rt.hub.feed_stream(handle, first, backlog, encoder)
        return SSEResponse(chunks, handle, rt.hub.close, retry_ms=rt.settings.sse_retry_ms)

    @router.websocket(f"{API}/jobs/{{job_id}}/ws")
    async def job_ws(websocket: WebSocket, job_id: str) -> None:
        """Canonical WebSocket stream of one job; resume with ``?after_seq=N``."""
        rt = runtime(websocket)

        async def plan(principal: Principal) -> Plan:
            await rt.jobs.get_stored(principal, job_id)
            after = int_param(websocket, "after_seq")
            return Plan(job_id, CanonicalWS(public_job), after_seq=after)

        await run_websocket(websocket, rt, plan)

    @router.websocket(f"{API}/ws")
    async def feed_ws(websocket: WebSocket) -> None:
        """Canonical WebSocket stream of all the caller's jobs; resume with ``?after_cursor=``."""
        rt = runtime(websocket)

        async def first(principal: Principal) -> list[str]:
            cursor = monotonic_us()
            page = await rt.jobs.list(principal, limit=100)
            items = [public_job(j) for j in page.items]
            body = {
                "type": "snapshot",
                "job_id": None,
                "seq": None,
                "cursor": cursor,
                "data": {"items": items},
            }
            return [codec.dumps_str(body)]

        async def plan(principal: Principal) -> Plan:
            after = int_param(websocket, "after_cursor")
            return Plan(None, CanonicalFeedWS(public_job), after_cursor=after, feed_first=first)

        await run_websocket(websocket, rt, plan)

    @router.post(
        f"{API}/stream-tickets",
        tags=["auth"],
        summary="A single-use ticket (≤ 60 s) to open a stream with ?ticket=",
    )
    async def stream_ticket(rt: RuntimeDep, user: UserDep) -> StreamTicket:
        ticket, expires = rt.auth.issue_ticket(user)
        return StreamTicket(ticket=ticket, expires_in=expires)

    @router.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", tags=["ops"], summary="Readiness: the store and the bus answer")
    async def readyz(rt: RuntimeDep) -> Response:
        problems = {}
        for name, check in (("store", rt.store.ping), ("bus", rt.bus.ping)):
            try:
                await asyncio.wait_for(check(), timeout=2.0)
            except Exception as exc:
                problems[name] = f"{type(exc).__name__}: {exc}"
        if rt.hub.shutting_down:
            problems["server"] = "shutting down"
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @router.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def metrics(rt: RuntimeDep) -> Response:
        rt.metrics.subscriptions.set(rt.bus.subscriber_count)
        rt.metrics.backlog_max.set(rt.hub.largest_backlog)
        return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4")

    return router


def result_response(job: Job, data_dir: Path) -> Response:
    """The artifact file or JSON result of a completed job; 409 otherwise."""
    if job.status is not JobStatus.COMPLETED:
        if job.finished:
            raise JobConflict(f"job {job.id!r} {job.status.value}; it has no result")
        raise JobConflict(
            f"job {job.id!r} is {job.status.value}; its result is available once it completes"
        )
    if job.artifact is not None:
        path = Path(job.artifact.path)
        if not path.is_absolute():
            path = data_dir / path
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
