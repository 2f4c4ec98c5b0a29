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
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from jobstream import codec
from jobstream.bus.subscriber import Wake
from jobstream.errors import BadRequest
from jobstream.models import Event, Job
from jobstream.server.auth import AuthError, Forbidden, Principal
from jobstream.server.links import Links
from jobstream.service import JobNotFound
from jobstream.streams.connection import abort_connection, detach_body
from jobstream.streams.envelope import event_envelope, feed_snapshot_envelope, snapshot_envelope
from jobstream.streams.lifecycle import (
    Encoder,
    FeedEncoder,
    Stream,
    StreamHandle,
    StreamLimit,
    StreamWriter,
)
from jobstream.streams.positions import parse_position

if TYPE_CHECKING:
    from jobstream.server.deps import Runtime

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013
CLOSE_POLICY = 1008
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


class CanonicalWS:
    """Canonical envelopes as text messages; a ``snapshot`` envelope first on a fresh connect."""

    def __init__(self, links: Links) -> None:
        self._links = links
        self._cache = f"ws{links.base}"

    def _text(self, event: Event) -> str:
        return event_envelope(event, self._links).decode()

    def snapshot(self, job: Job) -> str:
        return snapshot_envelope(job, self._links).decode()

    def event(self, event: Event) -> str:
        text: str = event.frame(self._cache, self._text)
        return text

    def ping(self) -> None:
        return None

    def timeout(self) -> None:
        return None

    def ends_with(self, event: Event) -> bool:
        return event.type.terminal


class CanonicalFeedWS(CanonicalWS):
    """The all-jobs stream: a ``snapshot`` of the recent jobs, then the same envelopes plus
    ``cursor`` (resume with ``?after_cursor=``)."""

    def __init__(self, links: Links) -> None:
        super().__init__(links)
        self._cache = f"ws-feed{links.base}"

    def _text(self, event: Event) -> str:
        return event_envelope(event, self._links, cursor=True).decode()

    def feed_snapshot(self, jobs: list[Job], position: int | None) -> str:
        return feed_snapshot_envelope(jobs, position, self._links).decode()

    def ends_with(self, event: Event) -> bool:
        return False


@dataclass(slots=True)
class Plan:
    """What a WebSocket route asks the runner to stream: one job, or (``job_id`` ``None``) all
    the caller's jobs, whose encoder's ``feed_snapshot`` opens a fresh connection."""

    job_id: str | None
    encoder: Encoder | FeedEncoder
    after_seq: int | None = None
    after_cursor: int | None = None
    batch: bool = False
    """Several messages per frame, as a JSON array (``?batch=1``, canonical streams only)."""


def int_param(websocket: WebSocket, name: str) -> int | None:
    """A resume position from the query; ``BadRequest`` (close 1008) when malformed."""
    return parse_position(websocket.query_params.get(name), name)


def bool_param(websocket: WebSocket, name: str) -> bool:
    """A yes/no query parameter (``1``/``true``/``yes``, ``0``/``false``/``no``, absent: no);
    ``BadRequest`` (close 1008) for anything else."""
    value = websocket.query_params.get(name)
    if value is None or value.lower() in ("", "0", "false", "no"):
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    raise BadRequest(f"{name} must be 1 or 0 (true or false), not {value[:20]!r}")


BATCH_MAX = 100
"""Messages per frame at most with ``?batch=1`` (a catch-up of thousands is several frames:
clients cap a frame's size, e.g. 1 MiB by default in Python's ``websockets``)."""


async def refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """Accept, then close with ``code`` (a browser sees codes only after the handshake)."""
    if websocket.application_state is WebSocketState.CONNECTING:
        await websocket.accept()
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await websocket.close(code=code, reason=reason[:120])


async def run_websocket(websocket: WebSocket, rt: Runtime, plan_for: Callable[..., Any]) -> None:
    """Authenticate, admit, accept, then stream what ``plan_for(principal)`` describes."""
    from jobstream.server.deps import authorize

    try:
        principal = await authorize(websocket, stream=True)
    except AuthError as exc:
        await refuse(websocket, CLOSE_UNAUTHORIZED, str(exc))
        return
    except Forbidden as exc:
        await refuse(websocket, CLOSE_FORBIDDEN, str(exc))
        return
    try:
        plan: Plan = await plan_for(principal)
    except JobNotFound as exc:
        await refuse(websocket, CLOSE_NOT_FOUND, str(exc))
        return
    except BadRequest as exc:
        await refuse(websocket, CLOSE_POLICY, str(exc))
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
    except BaseException:
        await rt.hub.close(handle)
        raise
    session = _Session(rt, principal, plan, handle)
    if detach_body(websocket.scope, session):
        return  # the outermost app runs it once the routing stack has returned
    # In place: the route's own ASGI callables (after the accept, a message is exactly one call).
    receive = getattr(websocket, "_receive", websocket.receive)
    send = getattr(websocket, "_send", websocket.send)
    await session.run_body(websocket.scope, receive, send)


class _Session:
    """An accepted stream's body (``streams/connection.py``: run detached from the routing
    stack when the app offers it, like an SSE body)."""

    __slots__ = ("handle", "plan", "principal", "rt")

    def __init__(self, rt: Runtime, principal: Principal, plan: Plan, handle: StreamHandle):
        self.rt = rt
        self.principal = principal
        self.plan = plan
        self.handle = handle

    def run_body(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        writer = _Writer(scope, send, self.rt, self.principal, self.plan, self.handle)
        return _serve(writer, receive, self.rt.hub.close)

    async def discard(self) -> None:
        await self.rt.hub.close(self.handle)


async def _serve(
    writer: _Writer, receive: Receive, on_close: Callable[[StreamHandle], Awaitable[None]]
) -> None:
    try:
        await writer.serve(receive, on_close)
    except (RuntimeError, OSError):  # receiving failed: the client is gone
        writer.handle.subscriber.close("disconnect")


class _Writer(StreamWriter):
    """What a WebSocket stream's writer needs between its runs (``StreamWriter``), and what the
    connection's task makes of the client's messages: activity (for the idle limit), ``resume``
    requests, and the disconnect."""

    __slots__ = ("after", "plan", "principal", "resume_to", "rt", "scope", "send", "stream")

    def __init__(
        self,
        scope: Scope,
        send: Send,
        rt: Runtime,
        principal: Principal,
        plan: Plan,
        handle: StreamHandle,
    ) -> None:
        super().__init__(handle)
        self.scope = scope
        # ASGI's own ``send``, not Starlette's ``send_text``: its state machine's checks on every
        # message cost as much as the framing (docs/benchmarks.md).
        self.send = send
        self.rt = rt
        self.principal = principal
        self.plan = plan
        self.stream: Stream | None = None
        self.after = plan.after_seq
        self.resume_to: list[int] = []

    def received(self, message: Message) -> bool:
        subscriber = self.handle.subscriber
        if message["type"] == "websocket.disconnect":
            subscriber.close("disconnect")
            return True
        self.handle.touch()
        text = message.get("text")
        if not text:
            return False
        try:
            body = codec.loads(text)
        except ValueError:
            return False
        if isinstance(body, dict) and body.get("type") == "resume":
            after = body.get("after_seq", body.get("after_cursor"))
            if isinstance(after, int) and after >= 0:
                self.resume_to.append(after)
                subscriber.wake(Wake.RESUME)
        return False

    async def write(self) -> None:
        handle = self.handle
        subscriber = handle.subscriber
        try:
            while True:
                stream = self.stream
                if stream is None:
                    stream = self.stream = await _stream(
                        self.rt, self.principal, self.plan, handle, self.after
                    )
                    async with contextlib.aclosing(stream.opening()) as opening:
                        async for units in opening:
                            await self._send_all(units)
                            if handle.resume_requested:
                                break
                while not stream.ended and not handle.resume_requested:
                    if not await self.next():
                        return  # idle: the next wake-up starts a new writer
                    units = stream.take()
                    if units:
                        await self._send_all(units)
                    del units  # an idle stream holds no batch
                if handle.resume_requested and self.resume_to and subscriber.close_reason is None:
                    handle.resume_requested = False
                    self.after = self.resume_to.pop()
                    self.resume_to.clear()
                    if self.plan.job_id is None:
                        self.plan.after_cursor = self.after
                    self.stream = None
                    continue
                break
            await self._close()
            self.finish()
        except (WebSocketDisconnect, OSError):
            self.finish()
        except asyncio.CancelledError:
            if handle.stalled is None:
                raise
            # A reader that stopped reading (see ``StreamHub._drop_stalled``): take the cancel
            # back and abort the connection; a close frame could not reach it.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self.finish()
            if abort_connection(self.scope):
                await asyncio.sleep(0)

    async def _send_all(self, units: list[Any]) -> None:
        handle = self.handle
        send = self.send
        # The hub's ticker drops the stream if a send blocks too long.
        handle.sending_since = time.monotonic()
        if self.plan.batch:
            for at in range(0, len(units), BATCH_MAX):
                text = "[" + ",".join(units[at : at + BATCH_MAX]) + "]"
                await send({"type": "websocket.send", "text": text})
        else:
            for unit in units:
                await send({"type": "websocket.send", "text": unit})
        handle.sending_since = 0.0

    async def _close(self) -> None:
        handle = self.handle
        subscriber = handle.subscriber
        close_code, reason = CLOSE_NORMAL, "done"
        reason_code = subscriber.close_reason
        flags = subscriber.take_flags()
        if reason_code == "shutdown":
            close_code, reason = CLOSE_GOING_AWAY, "server shutting down"
        elif reason_code == "overflow":
            close_code, reason = CLOSE_TRY_AGAIN, "reader too slow; resume from the last seq"
        elif flags & Wake.TIMEOUT or handle.deadline <= time.monotonic():
            close_code, reason = CLOSE_NORMAL, "idle timeout"
        if reason_code != "disconnect":
            with contextlib.suppress(RuntimeError, OSError):
                await self.send({"type": "websocket.close", "code": close_code, "reason": reason})


async def _stream(
    rt: Runtime, principal: Principal, plan: Plan, handle: StreamHandle, after: int | None
) -> Stream:
    if plan.job_id is not None:
        job = await rt.jobs.get_stored(principal, plan.job_id)
        if after is not None:
            rt.metrics.resumes.labels(transport="ws").inc()
        return rt.hub.job_stream(handle, job, after, plan.encoder)
    if plan.after_cursor is not None:
        rt.metrics.resumes.labels(transport="ws").inc()
    return rt.hub.feed(
        handle,
        principal.owner_filter,
        plan.after_cursor,
        cast(FeedEncoder, plan.encoder),
        lambda: rt.jobs.recent(principal),
    )
