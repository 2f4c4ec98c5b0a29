"""WebSocket streams on the same lifecycle as SSE: one subscriber, the hub's catch-up, caps,
idle limit and shutdown, and encoders that turn events into text messages.

Refusals happen after the handshake so that a browser sees the close code and reason: 4401
for a missing or bad token, 4404 for an unknown or foreign job, 1013 over the connection cap.
Heartbeats are protocol pings sent by the server (uvicorn's ``ws_ping_interval``, set from
``JOBSTREAM_WS_PING_SECONDS`` by ``jobstream serve``); a peer that does not answer is dropped.
A connection with no message either way for ``JOBSTREAM_WS_IDLE_TIMEOUT_SECONDS`` is closed.

A client resumes with ``?after_seq=N`` or by sending ``{"type": "resume", "after_seq": N}``:
it then gets exactly the messages after ``N``, then live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from jobstream import codec
from jobstream.bus.subscriber import Wake
from jobstream.models import Event, Job
from jobstream.server.auth import AuthError, Principal
from jobstream.service import JobNotFound
from jobstream.streams.lifecycle import Encoder, StreamHandle, StreamLimit

if TYPE_CHECKING:
    from jobstream.server.deps import Runtime

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404


def _envelope_text(event: Event) -> str:
    return event.encoded.decode()


def _feed_text(event: Event) -> str:
    body = event.envelope()
    body["cursor"] = event.cursor
    return codec.dumps_str(body)


class CanonicalWS:
    """Canonical envelopes as text messages; a ``snapshot`` message first on a fresh connect."""

    def __init__(self, public: Callable[[Job], dict[str, Any]]) -> None:
        self._public = public

    def snapshot(self, job: Job) -> str:
        return codec.dumps_str(
            {"type": "snapshot", "job_id": job.id, "seq": job.seq, "data": self._public(job)}
        )

    def event(self, event: Event) -> str:
        text: str = event.frame("ws", _envelope_text)
        return text

    def ping(self) -> None:
        return None

    def timeout(self) -> None:
        return None

    def ends_with(self, event: Event) -> bool:
        return event.type.terminal


class CanonicalFeedWS(CanonicalWS):
    """The all-jobs stream: the same envelopes plus ``cursor`` (resume with ``?after_cursor=``)."""

    def event(self, event: Event) -> str:
        text: str = event.frame("ws-feed", _feed_text)
        return text

    def ends_with(self, event: Event) -> bool:
        return False


@dataclass(slots=True)
class Plan:
    """What a WebSocket route asks the runner to stream."""

    job_id: str | None
    encoder: Encoder
    after_seq: int | None = None
    after_cursor: int | None = None
    feed_first: Callable[[Principal], Any] | None = None
    """For feeds: an async function giving the first units on a fresh connect."""


def int_param(websocket: WebSocket, name: str) -> int | None:
    raw = websocket.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a non-negative integer, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {raw!r}")
    return value


async def refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """Accept, then close with ``code`` (a browser sees codes only after the handshake)."""
    if websocket.application_state is WebSocketState.CONNECTING:
        await websocket.accept()
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await websocket.close(code=code, reason=reason[:120])


async def run_websocket(websocket: WebSocket, rt: Runtime, plan_for: Callable[..., Any]) -> None:
    """Authenticate, admit, accept, then stream what ``plan_for(principal)`` describes."""
    from jobstream.server.deps import authenticate

    try:
        principal = authenticate(websocket)
    except AuthError as exc:
        await refuse(websocket, CLOSE_UNAUTHORIZED, str(exc))
        return
    try:
        plan: Plan = await plan_for(principal)
    except JobNotFound as exc:
        await refuse(websocket, CLOSE_NOT_FOUND, str(exc))
        return
    except ValueError as exc:
        await refuse(websocket, 1008, str(exc))
        return
    settings = rt.settings
    try:
        kwargs: dict[str, Any] = {}
        if plan.job_id is not None:
            kwargs["job_id"] = plan.job_id
        elif principal.owner_filter is None:
            kwargs["everything"] = True
        else:
            kwargs["owner"] = principal.owner_filter
        handle = await rt.hub.open(
            principal.sub,
            "ws",
            limit=settings.ws_max_connections,
            ping_every=settings.ws_ping_seconds,
            idle_limit=settings.ws_idle_timeout_seconds,
            **kwargs,
        )
    except StreamLimit as exc:
        await refuse(websocket, CLOSE_TRY_AGAIN, str(exc))
        return
    try:
        await websocket.accept()
        await _serve(websocket, rt, principal, plan, handle)
    finally:
        await rt.hub.close(handle)


async def _serve(
    websocket: WebSocket, rt: Runtime, principal: Principal, plan: Plan, handle: StreamHandle
) -> None:
    subscriber = handle.subscriber
    resume_to: list[int] = []
    receiver = asyncio.ensure_future(_receive(websocket, handle, resume_to))
    close_code, reason = CLOSE_NORMAL, "done"
    try:
        after = plan.after_seq
        while True:
            chunks = await _chunks(rt, principal, plan, handle, after)
            try:
                async for units in chunks:
                    for unit in units:
                        await websocket.send_text(unit)
                    if handle.resume_requested:
                        break
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
            if handle.resume_requested and resume_to and subscriber.close_reason is None:
                handle.resume_requested = False
                after = resume_to.pop()
                resume_to.clear()
                if plan.job_id is None:
                    plan.after_cursor = after
                continue
            break
        reason_code = subscriber.close_reason
        flags = subscriber.take_flags()
        if reason_code == "shutdown":
            close_code, reason = CLOSE_GOING_AWAY, "server shutting down"
        elif reason_code == "overflow":
            close_code, reason = CLOSE_TRY_AGAIN, "reader too slow; resume from the last seq"
        elif flags & Wake.TIMEOUT or handle.deadline <= time.monotonic():
            close_code, reason = CLOSE_NORMAL, "idle timeout"
        if reason_code != "disconnect":
            with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                await websocket.close(code=close_code, reason=reason)
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver


async def _chunks(
    rt: Runtime, principal: Principal, plan: Plan, handle: StreamHandle, after: int | None
) -> AsyncIterator[list[Any]]:
    if plan.job_id is not None:
        job = await rt.jobs.get_stored(principal, plan.job_id)
        if after is not None:
            rt.metrics.resumes.labels(transport="ws").inc()
        return rt.hub.job_stream(handle, job, after, plan.encoder)
    owner = principal.owner_filter
    first: list[Any] = []
    backlog: list[Event] = []
    if plan.after_cursor is None:
        if plan.feed_first is not None:
            first = list(await plan.feed_first(principal))
    else:
        rt.metrics.resumes.labels(transport="ws").inc()
        backlog = await rt.hub.feed_catch_up(owner, plan.after_cursor)
    return rt.hub.feed_stream(handle, first, backlog, plan.encoder)


async def _receive(websocket: WebSocket, handle: StreamHandle, resume_to: list[int]) -> None:
    """Client messages: activity (for the idle limit), ``resume`` requests, and the disconnect."""
    subscriber = handle.subscriber
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            handle.touch()
            text = message.get("text")
            if not text:
                continue
            try:
                body = codec.loads(text)
            except ValueError:
                continue
            if isinstance(body, dict) and body.get("type") == "resume":
                after = body.get("after_seq", body.get("after_cursor"))
                if isinstance(after, int) and after >= 0:
                    resume_to.append(after)
                    subscriber.wake(Wake.RESUME)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    subscriber.close("disconnect")
