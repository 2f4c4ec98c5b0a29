"""Server-Sent Events: the canonical encoder and an ASGI response that runs a stream.

``SSEResponse`` is written against ASGI directly rather than through ``StreamingResponse``:
each wake-up drains the subscriber's whole backlog and writes it as one chunk (one ``send``),
and the client-disconnect watcher is a single idle task, not a task group per event. Both
measurably raise deliveries per second (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self, cast

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from jobstream import codec
from jobstream.models import Event, Job
from jobstream.server.links import Links
from jobstream.streams.connection import abort_connection, detach_body
from jobstream.streams.envelope import event_envelope, feed_snapshot_envelope, snapshot_envelope
from jobstream.streams.lifecycle import Stream, StreamHandle, StreamWriter

SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}
PING = b": ping\n\n"


def sse_frame(data: bytes, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """One event as SSE bytes. ``data`` must be a single line (JSON is)."""
    head = b""
    if id is not None:
        head += b"id: %s\n" % str(id).encode()
    if event is not None:
        head += b"event: %s\n" % event.encode()
    return head + b"data: " + data + b"\n\n"


class CanonicalSSE:
    """The canonical stream of one job: ``id: seq``, ``event: type``, ``data: envelope``; first
    a ``snapshot`` envelope (its ``id:`` the job's seq) unless the client resumes. Stateless:
    ``shared`` gives every stream under the same base URL the same one."""

    __slots__ = ("_cache", "_links")

    @classmethod
    def shared(cls, links: Links) -> Self:
        key = (cls, links.base)
        found = _SHARED.get(key)
        if found is None:
            if len(_SHARED) >= 64:  # a bound for hosts that mount under many prefixes
                _SHARED.clear()
            found = _SHARED[key] = cls(links)
        return cast(Self, found)

    def __init__(self, links: Links) -> None:
        self._links = links
        self._cache = f"sse{links.base}"

    def _frame(self, event: Event) -> bytes:
        return sse_frame(event_envelope(event, self._links), event=event.type.value, id=event.seq)

    def snapshot(self, job: Job) -> bytes:
        return sse_frame(snapshot_envelope(job, self._links), event="snapshot", id=job.seq)

    def event(self, event: Event) -> bytes:
        frame: bytes = event.frame(self._cache, self._frame)
        return frame

    def ping(self) -> bytes:
        return PING

    def timeout(self) -> bytes:
        return sse_frame(codec.dumps({"message": "Stream timeout"}), event="timeout")

    def ends_with(self, event: Event) -> bool:
        return event.type.terminal


_SHARED: dict[tuple[type, str], CanonicalSSE] = {}


class CanonicalFeedSSE(CanonicalSSE):
    """The canonical all-jobs stream: the same envelopes, ``id:`` is the owner cursor; first a
    ``snapshot`` of the recent jobs (its ``id:`` the cursor to resume from)."""

    __slots__ = ()

    def __init__(self, links: Links) -> None:
        super().__init__(links)
        self._cache = f"sse-feed{links.base}"

    def _frame(self, event: Event) -> bytes:
        return sse_frame(event_envelope(event, self._links), event=event.type.value, id=event.pos)

    def feed_snapshot(self, jobs: list[Job], position: int | None) -> bytes:
        # Without an ``id:`` line the client's last event id stays where it was.
        body = feed_snapshot_envelope(jobs, position, self._links)
        return sse_frame(body, event="snapshot", id=position)

    def ends_with(self, event: Event) -> bool:
        return False


class SSEResponse(Response):
    """Runs ``stream`` as a text/event-stream response, then ``on_close``.

    The response start goes out through the app's middleware (CORS headers and the like); the
    body, when the outermost app offers it (``streams/connection.py``, ``DETACH``), is written
    from that app's own frame after the routing stack has returned, so that an idle stream keeps
    none of the stack's suspended frames, exit stacks and request objects alive. The body keeps
    only the stream: not this response, its headers or the batches it has sent.
    """

    def __init__(
        self,
        stream: Stream,
        on_close: Callable[[StreamHandle], Awaitable[None]],
        *,
        retry_ms: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._stream: Stream | None = stream
        self._on_close = on_close
        self._retry = b"retry: %d\n\n" % retry_ms if retry_ms is not None else b""
        self.status_code = 200
        self.background = None
        if headers:
            merged = {**SSE_HEADERS, **headers}
            self.raw_headers = [(k.encode(), v.encode()) for k, v in merged.items()]
        else:
            self.raw_headers = _RAW_SSE_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._stream is not None, "an SSEResponse runs once"
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        except OSError:  # the client went away already
            await self.discard()
            return
        except BaseException:
            await self.discard()
            raise
        if detach_body(scope, self):
            return
        await self.run_body(scope, receive, send)

    async def discard(self) -> None:
        """End a stream whose body will never run."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await self._on_close(stream.handle)

    def run_body(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        """The body's coroutine (it holds the stream, not this response)."""
        stream, self._stream = self._stream, None
        assert stream is not None, "an SSEResponse runs once"
        return _Writer(stream, self._retry, scope, send).serve(receive, self._on_close)


_RAW_SSE_HEADERS = [(k.encode(), v.encode()) for k, v in SSE_HEADERS.items()]


class _Writer(StreamWriter):
    """An SSE stream's writer (``StreamWriter``)."""

    __slots__ = ("prefix", "scope", "send", "stream")

    def __init__(self, stream: Stream, prefix: bytes, scope: Scope, send: Send) -> None:
        super().__init__(stream.handle)
        self.stream = stream
        self.prefix: bytes | None = prefix
        self.scope = scope
        self.send = send

    def received(self, message: Message) -> bool:
        if message["type"] != "http.disconnect":
            return False  # the request's own (empty) body
        self.handle.subscriber.close("disconnect")
        return True

    async def write(self) -> None:
        stream = self.stream
        handle = self.handle
        subscriber = handle.subscriber
        send = self.send
        try:
            if self.prefix is not None:
                prefix, self.prefix = self.prefix, None
                if not await _send_opening(stream, send, prefix):
                    return
            while not stream.ended:
                if not await self.next():
                    return  # idle: the next wake-up starts a new writer
                units = stream.take()
                if subscriber.close_reason == "disconnect":
                    return
                if units:
                    await _write(send, handle, b"".join(units))
                del units
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.finish()
        except OSError:  # the client went away mid-write
            self.finish()
        except asyncio.CancelledError:
            if handle.stalled is None:
                raise
            self.finish()
            await _abandon(self.scope)


async def _send_opening(stream: Stream, send: Send, prefix: bytes) -> bool:
    """Send the catch-up (the ``retry:`` line first); ``False`` if the client left meanwhile."""
    subscriber = stream.handle.subscriber
    async with contextlib.aclosing(stream.opening()) as opening:
        async for units in opening:
            if subscriber.close_reason == "disconnect":
                return False
            await _write(send, stream.handle, prefix + b"".join(units))
            prefix = b""
    if subscriber.close_reason == "disconnect":
        return False
    if prefix:
        await _write(send, stream.handle, prefix)
    return True


async def _write(send: Send, handle: StreamHandle, body: bytes) -> None:
    # The hub's ticker drops the stream if this blocks too long (see ``stalled``).
    handle.sending_since = time.monotonic()
    await send({"type": "http.response.body", "body": body, "more_body": True})
    handle.sending_since = 0.0


async def _abandon(scope: Scope) -> None:
    """After the hub cancelled a send to a reader that stopped reading: take the cancel back
    (the stream ends normally) and abort the connection."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    if abort_connection(scope):
        await asyncio.sleep(0)  # let the server see the connection go before we return
