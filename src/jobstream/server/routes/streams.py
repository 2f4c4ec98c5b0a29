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
from pydantic import BaseModel, Field

from jobstream.server.auth import Principal
from jobstream.server.deps import RuntimeDep, StreamUserDep, UserDep, runtime
from jobstream.server.links import API, LinksDep, links_for
from jobstream.streams.poll import events_page
from jobstream.streams.positions import parse_last_event_id
from jobstream.streams.sse import CanonicalFeedSSE, CanonicalSSE, SSEResponse
from jobstream.streams.ws import (
    CanonicalFeedWS,
    CanonicalWS,
    Plan,
    bool_param,
    int_param,
    run_websocket,
)

router = APIRouter(prefix=API, tags=["streams"])

SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "A Server-Sent Events stream"}
}
LastEventIdHeader = Annotated[str | None, Header(alias="last-event-id")]
LastEventIdQuery = Annotated[str | None, Query(description="for clients that cannot send headers")]


class EventsPage(BaseModel):
    """A page of one job's events, for polling clients (``Accept: application/json``)."""

    events: list[dict[str, Any]] = Field(
        description="canonical envelopes, as on the SSE stream: a lone `snapshot` when "
        "`after_seq` is missing or older than the kept log, else the events after `after_seq`"
    )
    next_seq: int = Field(description="the `after_seq` of the next request")
    done: bool = Field(description="the page reaches the job's terminal event: stop polling")


JOB_EVENTS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "model": EventsPage,
        "content": {"text/event-stream": {}},
        "description": "A Server-Sent Events stream; with `Accept: application/json`, a page "
        "of the job's events (long-polled with `after_seq` and `wait`)",
    }
}


def wants_json(accept: str | None) -> bool:
    """``Accept`` asks for JSON and not for an event stream."""
    if not accept:
        return False
    types = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return "application/json" in types and "text/event-stream" not in types


class StreamTicket(BaseModel):
    ticket: str
    expires_in: int


@router.get(
    "/jobs/{job_id}/events",
    summary="SSE stream of one job (resume with Last-Event-ID), or a JSON page of its events",
    response_class=Response,
    responses=JOB_EVENTS_RESPONSE,
)
async def job_events(
    job_id: str,
    rt: RuntimeDep,
    user: StreamUserDep,
    links: LinksDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
    accept: Annotated[str | None, Header()] = None,
    after_seq: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="JSON page: the events after this seq"),
    ] = None,
    wait: Annotated[
        float | None,
        Query(ge=0, description="JSON page: seconds to wait for an event after `after_seq`"),
    ] = None,
) -> Response:
    """With ``Accept: application/json``: ``{"events": [...], "next_seq": N, "done": bool}``,
    the same envelopes as the SSE stream after ``after_seq`` (a lone ``snapshot`` without it,
    or when the log no longer keeps those events); ``wait=S`` long-polls for the next event."""
    job = await rt.jobs.get_stored(user, job_id)
    if wants_json(accept):
        seconds = min(wait or 0.0, rt.settings.max_wait_seconds)
        body = await events_page(rt.hub, user.sub, job, after_seq, seconds, links)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})
    after = parse_last_event_id(last_event_id_header, last_event_id)
    handle = await rt.hub.open(user.sub, "sse", job_id=job_id)
    if after is not None:
        rt.metrics.resumes.labels(transport="sse").inc()
    stream = rt.hub.job_stream(handle, job, after, CanonicalSSE.shared(links))
    return SSEResponse(stream, rt.hub.close, retry_ms=rt.settings.sse_retry_ms)


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
    stream = rt.hub.feed(
        handle, owner, after, CanonicalFeedSSE.shared(links), lambda: rt.jobs.recent(user)
    )
    return SSEResponse(stream, rt.hub.close, retry_ms=rt.settings.sse_retry_ms)


@router.websocket("/jobs/{job_id}/ws")
async def job_ws(websocket: WebSocket, job_id: str) -> None:
    """Canonical WebSocket stream of one job; resume with ``?after_seq=N``. ``?batch=1``:
    each frame is a JSON array of one or more envelopes (what one wake-up has pending)."""
    rt = runtime(websocket)

    async def plan(principal: Principal) -> Plan:
        await rt.jobs.get_stored(principal, job_id)
        after = int_param(websocket, "after_seq")
        batch = bool_param(websocket, "batch")
        return Plan(job_id, CanonicalWS(links_for(websocket)), after_seq=after, batch=batch)

    await run_websocket(websocket, rt, plan)


@router.websocket("/ws")
async def feed_ws(websocket: WebSocket) -> None:
    """Canonical WebSocket stream of all the caller's jobs; resume with ``?after_cursor=``;
    ``?batch=1`` as for one job."""

    async def plan(principal: Principal) -> Plan:
        after = int_param(websocket, "after_cursor")
        batch = bool_param(websocket, "batch")
        return Plan(None, CanonicalFeedWS(links_for(websocket)), after_cursor=after, batch=batch)

    await run_websocket(websocket, runtime(websocket), plan)


@router.post(
    "/stream-tickets",
    tags=["auth"],
    summary="A single-use ticket (≤ 60 s) to open a stream with ?ticket=",
)
async def stream_ticket(rt: RuntimeDep, user: UserDep) -> StreamTicket:
    ticket, expires = rt.auth.issue_ticket(user)
    return StreamTicket(ticket=ticket, expires_in=expires)


__all__ = ["EventsPage", "StreamTicket", "router", "wants_json"]
