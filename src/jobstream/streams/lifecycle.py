"""One lifecycle for every stream transport (SSE, WebSocket, the seeds' profiles).

A stream is: admission (connection caps) -> subscribe (before reading anything, so nothing falls
between the catch-up and the live events) -> catch-up (the snapshot, or the events after the
client's last ``seq`` from the store plus the bus's in-flight window) -> live batches -> end
(terminal event, time limit, shutdown, overflow, or the client leaving).

The send loop awaits one thing: its ``Subscriber``. Heartbeats and time limits come from one
ticker task for all streams (not a timer per stream), and shutdown closes every subscriber, so
a stream's wake-up costs the same whatever woke it. The transport turns what the loop yields
into bytes with an ``Encoder``; frames are cached on the event, so an event delivered to a
thousand streams of the same kind is encoded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobstream.bus.base import EventBus
from jobstream.bus.subscriber import Subscriber, Wake
from jobstream.models import Event, Job, monotonic_us
from jobstream.server.metrics import Metrics
from jobstream.settings import Settings
from jobstream.store.base import JobStore

log = logging.getLogger(__name__)


class StreamLimit(Exception):
    """Too many streams: globally, or for this user."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Encoder(Protocol):
    """How one transport or profile writes what a stream carries. ``None`` sends nothing; a
    list is several units for one event (e.g. a status change and then a result message)."""

    def snapshot(self, job: Job) -> Any | None: ...
    def event(self, event: Event) -> Any | None: ...
    def ping(self) -> Any | None: ...
    def timeout(self) -> Any | None: ...
    def ends_with(self, event: Event) -> bool: ...


class FeedEncoder(Encoder, Protocol):
    """An all-jobs stream's encoder: it also writes the opening ``snapshot`` of recent jobs."""

    def feed_snapshot(self, jobs: list[Job], cursor: int) -> Any | None: ...


@dataclass(slots=True)
class StreamHandle:
    subscriber: Subscriber
    user: str
    transport: str
    opened: float = field(default_factory=time.monotonic)
    deadline: float = 0.0
    last_send: float = field(default_factory=time.monotonic)
    ping_every: float = 15.0
    idle_limit: float | None = None
    """When set, ``deadline`` moves ``idle_limit`` seconds past every activity (WebSocket)."""
    resume_requested: bool = False

    def touch(self) -> None:
        """Activity on the connection: sent or received a message."""
        now = time.monotonic()
        self.last_send = now
        if self.idle_limit is not None:
            self.deadline = now + self.idle_limit


class StreamHub:
    """Admission, the registry of live streams, their heartbeats, time limits and shutdown."""

    def __init__(
        self, settings: Settings, store: JobStore, bus: EventBus, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self._streams: dict[Subscriber, StreamHandle] = {}
        self._per_user: dict[str, int] = {}
        self._per_transport: dict[str, int] = {}
        self._freed = asyncio.Condition()
        self._ticker: asyncio.Task[None] | None = None
        self.shutting_down = False

    @property
    def count(self) -> int:
        return len(self._streams)

    def count_for(self, transport: str) -> int:
        return self._per_transport.get(transport, 0)

    @property
    def largest_backlog(self) -> int:
        return max((s.backlog for s in self._streams), default=0)

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick(), name="jobstream-stream-ticker")

    async def shutdown(self) -> None:
        """Close every stream now; each ends with its transport's clean close."""
        self.shutting_down = True
        for subscriber in list(self._streams):
            subscriber.close("shutdown")
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def open(
        self,
        user: str,
        transport: str,
        *,
        job_id: str | None = None,
        owner: str | None = None,
        everything: bool = False,
        limit: int | None = None,
        ping_every: float | None = None,
        time_limit: float | None = None,
        idle_limit: float | None = None,
    ) -> StreamHandle:
        """Admit and subscribe a stream, or raise ``StreamLimit``.

        A client that drops and reconnects at once may arrive before the server has seen its old
        connection go, so a stream over a cap waits up to a second for a place to free up.
        """
        if self.shutting_down:
            raise StreamLimit("the server is shutting down", retry_after=2)
        deadline = time.monotonic() + 1.0
        while (reason := self._over_limit(user, transport, limit)) is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.metrics.stream_refusals.labels(transport=transport).inc()
                raise StreamLimit(reason)
            async with self._freed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), timeout=remaining)
        subscriber = Subscriber(
            job_id=job_id,
            owner=owner,
            everything=everything,
            soft_limit=self.settings.stream_backlog_soft,
            hard_limit=self.settings.stream_backlog_hard,
        )
        now = time.monotonic()
        handle = StreamHandle(
            subscriber,
            user,
            transport,
            deadline=now
            + (time_limit if time_limit is not None else self.settings.stream_timeout_seconds),
            ping_every=ping_every if ping_every is not None else self.settings.sse_ping_seconds,
            idle_limit=idle_limit,
        )
        if idle_limit is not None:
            handle.deadline = now + idle_limit
        self._streams[subscriber] = handle
        self._per_user[user] = self._per_user.get(user, 0) + 1
        self._per_transport[transport] = self._per_transport.get(transport, 0) + 1
        self.metrics.open_streams.labels(transport=transport).inc()
        self.bus.subscribe(subscriber)
        return handle

    def _over_limit(self, user: str, transport: str, limit: int | None) -> str | None:
        s = self.settings
        if len(self._streams) >= s.max_streams:
            return f"too many open streams on this server (limit {s.max_streams}); retry shortly"
        if self._per_user.get(user, 0) >= s.max_streams_per_user:
            return (
                f"too many open streams for this user (limit {s.max_streams_per_user}); "
                "close some before opening more"
            )
        if limit is not None and self._per_transport.get(transport, 0) >= limit:
            return f"too many open {transport} connections (limit {limit}); retry shortly"
        return None

    async def close(self, handle: StreamHandle) -> None:
        subscriber = handle.subscriber
        if self._streams.pop(subscriber, None) is None:
            return
        self.bus.unsubscribe(subscriber)
        if subscriber.close_reason is None:
            subscriber.close("closed")
        left = self._per_user[handle.user] - 1
        if left:
            self._per_user[handle.user] = left
        else:
            del self._per_user[handle.user]
        self._per_transport[handle.transport] -= 1
        self.metrics.open_streams.labels(transport=handle.transport).dec()
        self.metrics.stream_duration.labels(transport=handle.transport).observe(
            time.monotonic() - handle.opened
        )
        if subscriber.close_reason == "overflow":
            self.metrics.overflow_disconnects.inc()
            log.warning(
                "stream dropped: its reader fell too far behind", extra=_overflow_fields(handle)
            )
        if subscriber.coalesced:
            self.metrics.coalesced.inc(subscriber.coalesced)
        async with self._freed:
            self._freed.notify_all()

    async def _tick(self) -> None:
        """Heartbeats and time limits for every stream, from one task."""
        while True:
            period = min(1.0, self.settings.sse_ping_seconds / 2, self.settings.ws_ping_seconds / 2)
            await asyncio.sleep(max(period, 0.05))
            now = time.monotonic()
            for subscriber, handle in list(self._streams.items()):
                if now >= handle.deadline:
                    subscriber.wake(Wake.TIMEOUT)
                elif now - handle.last_send >= handle.ping_every:
                    handle.last_send = now
                    subscriber.wake(Wake.PING)

    # -- catch-up -----------------------------------------------------------------------------

    async def live_job(self, job: Job) -> tuple[Job, list[Event]]:
        """The stored job brought up to date with the bus's in-flight events, and those events."""
        recent = await self.bus.recent(job.id, job.seq)
        for event in recent:
            job = job.apply(event)
        return job, recent

    async def catch_up(self, job: Job, after_seq: int | None) -> tuple[Job, list[Event] | None]:
        """``(live job, events after after_seq)``; events ``None`` means: send a snapshot."""
        live, recent = await self.live_job(job)
        if after_seq is None:
            return live, None
        # The store may already hold events the snapshot above predates (a claim commits
        # before it is published), so take every contiguous event after ``after_seq`` there is.
        stored = await self.store.events_after(job.id, after_seq)
        if stored is None:
            return live, None
        events: dict[int, Event] = {e.seq: e for e in stored}
        for event in recent:
            events.setdefault(event.seq, event)
        ordered = [events[seq] for seq in sorted(events) if seq > after_seq]
        if [e.seq for e in ordered] != list(range(after_seq + 1, after_seq + 1 + len(ordered))):
            return live, None
        if (ordered[-1].seq if ordered else after_seq) < live.seq:
            return live, None
        for event in ordered:
            live = live.apply(event)
        return live, ordered

    async def feed_catch_up(self, owner: str | None, after_cursor: int) -> list[Event]:
        """An owner's (``None``: everyone's) events after a cursor: the store's log merged with
        the bus's in-flight window, each (job, seq) once, in cursor order."""
        stored = await self.store.owner_events_after(owner, after_cursor)
        merged = {(e.job_id, e.seq): e for e in stored}
        for event in await self.bus.recent_for_owner(owner, after_cursor):
            merged.setdefault((event.job_id, event.seq), event)
        return sorted(merged.values(), key=lambda e: (e.cursor, e.job_id, e.seq))

    # -- the send loop ------------------------------------------------------------------------

    async def job_stream(
        self, handle: StreamHandle, job: Job, after_seq: int | None, encoder: Encoder
    ) -> AsyncIterator[list[Any]]:
        """Batches of encoded units for one job's stream, ending after its terminal event."""
        live, backlog = await self.catch_up(job, after_seq)
        units: list[Any] = []
        last = live.seq
        if backlog is None:
            unit = encoder.snapshot(live)
            if unit is not None:
                units.extend(unit if isinstance(unit, list) else [unit])
        else:
            last = after_seq if after_seq is not None else live.seq
            for event in backlog:
                units.extend(self._encode(encoder, event))
                last = event.seq
        if units:
            yield units
        if live.finished or handle.subscriber.closed:
            return

        def fresh(event: Event) -> bool:
            nonlocal last
            if event.seq <= last:
                return False
            last = event.seq
            return True

        async for batch in self._live(handle, encoder, fresh):
            yield batch.units
            if batch.ended:
                return

    async def feed(
        self,
        handle: StreamHandle,
        owner: str | None,
        after_cursor: int | None,
        encoder: FeedEncoder,
        recent_jobs: Callable[[], Awaitable[list[Job]]],
    ) -> AsyncIterator[list[Any]]:
        """An all-jobs stream (``owner`` ``None``: everyone's), subscribed by ``open``: on a fresh
        connect the encoder's ``feed_snapshot`` of ``recent_jobs()``, on a resume the events after
        ``after_cursor``; then live events, unending."""
        first: list[Any] = []
        backlog: list[Event] = []
        if after_cursor is None:
            cursor = monotonic_us()
            unit = encoder.feed_snapshot(await recent_jobs(), cursor)
            if unit is not None:
                first.append(unit)
        else:
            backlog = await self.feed_catch_up(owner, after_cursor)
        return self._feed_stream(handle, first, backlog, encoder)

    async def _feed_stream(
        self, handle: StreamHandle, first: list[Any], backlog: list[Event], encoder: Encoder
    ) -> AsyncIterator[list[Any]]:
        """Batches for an all-jobs stream: ``first`` units, the backlog, then live, unending."""
        seen: dict[str, int] = {}
        units = list(first)
        for event in backlog:
            if event.seq > seen.get(event.job_id, 0):
                seen[event.job_id] = event.seq
                units.extend(self._encode(encoder, event))
        if units:
            yield units

        def fresh(event: Event) -> bool:
            if event.seq <= seen.get(event.job_id, 0):
                return False
            seen[event.job_id] = event.seq
            if event.type.terminal:
                seen.pop(event.job_id, None)
            return True

        async for batch in self._live(handle, encoder, fresh, end_on_terminal=False):
            yield batch.units
            if batch.ended:
                return

    @staticmethod
    def _encode(encoder: Encoder, event: Event) -> list[Any]:
        unit = encoder.event(event)
        if unit is None:
            return []
        return unit if isinstance(unit, list) else [unit]

    async def _live(
        self,
        handle: StreamHandle,
        encoder: Encoder,
        keep: Callable[[Event], bool],
        *,
        end_on_terminal: bool = True,
    ) -> AsyncIterator[_Batch]:
        subscriber = handle.subscriber
        latency = self.metrics.publish_to_send
        delivered = self.metrics.events_delivered.labels(transport=handle.transport)
        while True:
            await subscriber.wait()
            events = [e for e in subscriber.drain() if keep(e)]
            flags = subscriber.take_flags()
            units: list[Any] = []
            ended = False
            for event in events:
                # Inline rather than ``_encode``: this runs per event per stream.
                unit = encoder.event(event)
                if unit is not None:
                    if isinstance(unit, list):
                        units.extend(unit)
                    else:
                        units.append(unit)
                if end_on_terminal and encoder.ends_with(event):
                    ended = True
                    break
            if events:
                delivered.inc(len(events))
                latency.observe(max(time.time() - events[-1].cursor / 1e6, 0.0))
            if not ended and flags & Wake.TIMEOUT:
                unit = encoder.timeout()
                if unit is not None:
                    units.append(unit)
                ended = True
            elif not units and flags & Wake.PING:
                unit = encoder.ping()
                if unit is not None:
                    units.append(unit)
            if subscriber.closed and not ended:
                ended = True
            if flags & Wake.RESUME:
                handle.resume_requested = True
            if units:
                handle.touch()
            yield _Batch(units, events, ended)
            if ended:
                return


@dataclass(slots=True)
class _Batch:
    units: list[Any]
    events: list[Event]
    ended: bool


def _overflow_fields(handle: StreamHandle) -> dict[str, object]:
    """The log fields of a stream dropped for falling behind."""
    return {
        "event": "stream.overflow",
        "user": handle.user,
        "transport": handle.transport,
        "job_id": handle.subscriber.job_id,
        "seconds_open": round(time.monotonic() - handle.opened, 3),
    }
