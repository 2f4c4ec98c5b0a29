"""The polling transport that loses nothing: a page of one job's events, long-polled.

``GET /api/v1/jobs/{id}/events`` with ``Accept: application/json`` answers
``{"events": [...], "next_seq": N, "done": bool}`` instead of an SSE stream. ``events`` holds the
same envelopes, in the same order, as the SSE stream would send after ``after_seq`` (the
``snapshot`` included: it comes alone, for a request without ``after_seq`` or one whose events
the log no longer keeps). ``next_seq`` is the ``after_seq`` of the next request (the last seq
in the page, or the given one for an empty page); ``done`` is true once the page reaches the
job's terminal event, and the client stops.

With ``wait=S`` and nothing after ``after_seq`` yet, the request waits (up to S seconds, capped
by ``JOBSTREAM_MAX_WAIT_SECONDS``) for the job's next event: it subscribes before it reads the
store, as every stream does, so an event stored between the read and the wait is not missed.
The page is built from the stored log (every event is stored before it is published), and the
envelopes are the events' cached bytes, spliced into the page: encoded once for every reader.
"""

from __future__ import annotations

import asyncio
import contextlib

from jobstream.models import Event, Job
from jobstream.server.links import Links
from jobstream.streams.envelope import event_envelope, snapshot_envelope
from jobstream.streams.lifecycle import StreamHandle, StreamHub


def page_body(envelopes: list[bytes], next_seq: int, done: bool) -> bytes:
    return b"".join(
        (
            b'{"events":[',
            b",".join(envelopes),
            b'],"next_seq":',
            str(next_seq).encode(),
            b',"done":',
            b"true" if done else b"false",
            b"}",
        )
    )


async def _read(
    hub: StreamHub, job: Job, after_seq: int | None, links: Links
) -> tuple[Job, list[bytes], int]:
    live, backlog = await hub.catch_up(job, after_seq)
    if backlog is None:
        return live, [snapshot_envelope(live, links)], live.seq
    last = after_seq if after_seq is not None else live.seq
    envelopes = []
    for event in backlog:
        envelopes.append(event_envelope(event, links))
        last = event.seq
    return live, envelopes, last


async def _next_event(handle: StreamHandle, after_seq: int, wait: float) -> None:
    """Return when an event past ``after_seq`` was published, ``wait`` passed, or the stream
    was closed (server shutdown)."""
    subscriber = handle.subscriber
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            while not subscriber.closed:
                await subscriber.wait()
                subscriber.take_flags()
                events: list[Event] = subscriber.drain()
                if any(event.seq > after_seq for event in events):
                    return


async def events_page(
    hub: StreamHub,
    user: str,
    job: Job,
    after_seq: int | None,
    wait: float,
    links: Links,
) -> bytes:
    """The JSON page of ``job``'s events after ``after_seq`` (see the module docstring)."""
    if not wait or after_seq is None or job.finished:
        live, envelopes, last = await _read(hub, job, after_seq, links)
        return page_body(envelopes, last, live.finished and last >= live.seq)
    handle = await hub.open(user, "poll", job_id=job.id)
    try:
        live, envelopes, last = await _read(hub, job, after_seq, links)
        if not envelopes and not live.finished:
            await _next_event(handle, after_seq, wait)
            live, envelopes, last = await _read(hub, live, after_seq, links)
    finally:
        await hub.close(handle)
    return page_body(envelopes, last, live.finished and last >= live.seq)


__all__ = ["events_page", "page_body"]
