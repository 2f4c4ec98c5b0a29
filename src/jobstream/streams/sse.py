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
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from jobstream import codec
from jobstream.models import Event, Job
from jobstream.server.links import Links
from jobstream.streams.connection import abort_connection
from jobstream.streams.envelope import event_envelope, feed_snapshot_envelope, snapshot_envelope
from jobstream.streams.lifecycle import StreamHandle

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
    a ``snapshot`` envelope (its ``id:`` the job's seq) unless the client resumes."""

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


class CanonicalFeedSSE(CanonicalSSE):
    """The canonical all-jobs stream: the same envelopes, ``id:`` is the owner cursor; first a
    ``snapshot`` of the recent jobs (its ``id:`` the cursor to resume from)."""

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
    """Runs ``chunks`` (batches of bytes) as a text/event-stream response, then ``on_close``."""

    def __init__(
        self,
        chunks: AsyncIterator[list[bytes]],
        handle: StreamHandle,
        on_close: Callable[[StreamHandle], Awaitable[None]],
        *,
        retry_ms: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._chunks = chunks
        self._handle = handle
        self._on_close = on_close
        self._retry = b"retry: %d\n\n" % retry_ms if retry_ms is not None else b""
        self.status_code = 200
        self.background = None
        merged = {**SSE_HEADERS, **(headers or {})}
        self.raw_headers = [(k.encode(), v.encode()) for k, v in merged.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handle = self._handle
        subscriber = handle.subscriber
        handle.task = asyncio.current_task()
        watcher = asyncio.ensure_future(_until_disconnect(receive))
        watcher.add_done_callback(lambda _: subscriber.close("disconnect"))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            prefix = self._retry
            async for units in self._chunks:
                if subscriber.close_reason == "disconnect":
                    break
                if units or prefix:
                    body = prefix + b"".join(units)
                    prefix = b""
                    # The hub's ticker drops the stream if this blocks too long (see ``stalled``).
                    handle.sending_since = time.monotonic()
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    handle.sending_since = 0.0
            if subscriber.close_reason != "disconnect":
                with contextlib.suppress(OSError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away mid-write
            pass
        except asyncio.CancelledError:
            if handle.stalled is None:
                raise
            await _abandon(scope)
        finally:
            watcher.cancel()
            await self._chunks.aclose()  # type: ignore[attr-defined]
            await self._on_close(handle)


async def _abandon(scope: Scope) -> None:
    """After the hub cancelled a send to a reader that stopped reading: take the cancel back
    (the stream ends normally) and abort the connection."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    if abort_connection(scope):
        await asyncio.sleep(0)  # let the server see the connection go before we return


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
