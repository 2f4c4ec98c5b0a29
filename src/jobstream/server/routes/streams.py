"""Streams: SSE and WebSocket streams of one job and of all the caller's jobs, and the stream
tickets that open them without a long-lived token in the URL.

A route here only picks what to stream and the encoder; admission, catch-up, the send loop,
heartbeats, limits and shutdown are the one lifecycle of ``StreamHub``, and the wire bytes are
the encoders' (``streams/sse.py``, ``streams/ws.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, WebSocket
from fastapi.responses import Response
from pydantic import BaseModel

from jobstream.server.auth import Principal
from jobstream.server.deps import RuntimeDep, StreamUserDep, UserDep, runtime
from jobstream.server.links import API, LinksDep, links_for
from jobstream.streams.positions import parse_last_event_id
from jobstream.streams.sse import CanonicalFeedSSE, CanonicalSSE, SSEResponse
from jobstream.streams.ws import CanonicalFeedWS, CanonicalWS, Plan, int_param, run_websocket

router = APIRouter(prefix=API, tags=["streams"])

SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "A Server-Sent Events stream"}
}
LastEventIdHeader = Annotated[str | None, Header(alias="last-event-id")]
LastEventIdQuery = Annotated[str | None, Query(description="for clients that cannot send headers")]


class StreamTicket(BaseModel):
    ticket: str
    expires_in: int


@router.get(
    "/jobs/{job_id}/events",
    summary="SSE stream of one job (resume with Last-Event-ID)",
    response_class=Response,
    responses=SSE_RESPONSE,
)
async def job_events(
    job_id: str,
    rt: RuntimeDep,
    user: StreamUserDep,
    links: LinksDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> Response:
    after = parse_last_event_id(last_event_id_header, last_event_id)
    job = await rt.jobs.get_stored(user, job_id)
    handle = await rt.hub.open(user.sub, "sse", job_id=job_id)
    if after is not None:
        rt.metrics.resumes.labels(transport="sse").inc()
    chunks = rt.hub.job_stream(handle, job, after, CanonicalSSE(links))
    return SSEResponse(chunks, handle, rt.hub.close, retry_ms=rt.settings.sse_retry_ms)


@router.get(
    "/events",
    summary="SSE stream of all the caller's jobs (resume with Last-Event-ID)",
    response_class=Response,
    responses=SSE_RESPONSE,
)
async def all_events(
    rt: RuntimeDep,
    user: StreamUserDep,
    links: LinksDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> Response:
    after = parse_last_event_id(last_event_id_header, last_event_id)
    owner = user.owner_filter
    if owner is None:
        handle = await rt.hub.open(user.sub, "sse", everything=True)
    else:
        handle = await rt.hub.open(user.sub, "sse", owner=owner)
    if after is not None:
        rt.metrics.resumes.labels(transport="sse").inc()
    chunks = await rt.hub.feed(
        handle, owner, after, CanonicalFeedSSE(links), lambda: rt.jobs.recent(user)
    )
    return SSEResponse(chunks, handle, rt.hub.close, retry_ms=rt.settings.sse_retry_ms)


@router.websocket("/jobs/{job_id}/ws")
async def job_ws(websocket: WebSocket, job_id: str) -> None:
    """Canonical WebSocket stream of one job; resume with ``?after_seq=N``."""
    rt = runtime(websocket)

    async def plan(principal: Principal) -> Plan:
        await rt.jobs.get_stored(principal, job_id)
        after = int_param(websocket, "after_seq")
        return Plan(job_id, CanonicalWS(links_for(websocket)), after_seq=after)

    await run_websocket(websocket, rt, plan)


@router.websocket("/ws")
async def feed_ws(websocket: WebSocket) -> None:
    """Canonical WebSocket stream of all the caller's jobs; resume with ``?after_cursor=``."""

    async def plan(principal: Principal) -> Plan:
        after = int_param(websocket, "after_cursor")
        return Plan(None, CanonicalFeedWS(links_for(websocket)), after_cursor=after)

    await run_websocket(websocket, runtime(websocket), plan)


@router.post(
    "/stream-tickets",
    tags=["auth"],
    summary="A single-use ticket (≤ 60 s) to open a stream with ?ticket=",
)
async def stream_ticket(rt: RuntimeDep, user: UserDep) -> StreamTicket:
    ticket, expires = rt.auth.issue_ticket(user)
    return StreamTicket(ticket=ticket, expires_in=expires)


__all__ = ["StreamTicket", "router"]
