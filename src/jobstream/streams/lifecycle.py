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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from jobstream.bus.base import EventBus
from jobstream.bus.subscriber import Subscriber, Wake
from jobstream.limits import Limits, MemoryLimits
from jobstream.models import Event, Job
from jobstream.server.metrics import Metrics
from jobstream.settings import Settings
from jobstream.store.base import JobStore

log = logging.getLogger(__name__)

FEED_PAGE = 1000
"""Events read from the store at a time while an all-jobs stream catches up."""
FEED_SNAPSHOT_PAGE = 500
"""Jobs per ``snapshot`` message when a catch-up goes past its bound."""
WRITER_LINGER = 2.0
"""Seconds a stream's writer task waits for more to write before it ends (``StreamWriter``)."""
LATENCY_SAMPLE = 15
"""``jobstream_publish_to_send_seconds`` observes one of every 16 batches a stream sends."""


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
    """An all-jobs stream's encoder: it also writes ``snapshot`` messages of several jobs (the
    opening one; those standing for events skipped past the catch-up bound). ``position`` is the
    place in the log they bring the client to; ``None`` on a page that is not the last."""

    def feed_snapshot(self, jobs: list[Job], position: int | None) -> Any | None: ...


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
    sending_since: float = 0.0
    """When the send in progress began (0: none). A reader that stops reading blocks it."""
    task: asyncio.Task[Any] | None = None
    """The task writing to the connection, while there is one (``StreamWriter``): cancelled
    when its reader stalls."""
    retire: bool = False
    """Set by the ticker: the writer has waited ``WRITER_LINGER`` seconds with nothing to do."""
    stalled: str | None = None
    """Why the reader was dropped while a send blocked (``send_timeout``, ``overflow``,
    ``time_limit``, ``shutdown``)."""
    delivered: int = 0
    """Events sent so far; added to ``jobstream_events_delivered`` at each scrape and at the
    end (a counter per send on every stream cost more than the send's own bookkeeping)."""
    reported: int = 0
    batches: int = 0

    def stall_reason(self, now: float, send_timeout: float) -> str | None:
        """Why a send in progress must end now, if it must: it has blocked too long, or a limit
        it keeps from being enforced has passed (the backlog bound, the time limit)."""
        if not self.sending_since:
            return None
        if self.subscriber.close_reason in ("overflow", "shutdown"):
            return self.subscriber.close_reason
        if now >= self.deadline:
            return "time_limit"
        if now - self.sending_since >= send_timeout:
            return "send_timeout"
        return None

    def touch(self) -> None:
        """Activity on the connection: sent or received a message."""
        now = time.monotonic()
        self.last_send = now
        if self.idle_limit is not None:
            self.deadline = now + self.idle_limit


class StreamHub:
    """Admission, the registry of live streams, their heartbeats, time limits and shutdown."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        bus: EventBus,
        metrics: Metrics,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.limits = limits or MemoryLimits()
        """The per-user stream cap, counted across instances when shared."""
        self._streams: dict[Subscriber, StreamHandle] = {}
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
        """Close every stream now; each ends with its transport's clean close (a stream blocked
        in a send to a reader that stopped reading is dropped instead)."""
        self.shutting_down = True
        for subscriber, handle in list(self._streams.items()):
            subscriber.close("shutdown")
            if handle.sending_since and handle.stalled is None:
                self._drop_stalled(handle, "shutdown")
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
        cap = self.settings.max_streams_per_user
        while True:
            reason = self._over_limit(transport, limit)
            if reason is None:
                if await self.limits.open_stream(user, cap):
                    break
                reason = (
                    f"too many open streams for this user (limit {cap}); "
                    "close some before opening more"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.metrics.stream_refusals.labels(transport=transport).inc()
                raise StreamLimit(reason)
            async with self._freed:
                # A place may free up on another instance too: look again at least every 0.1 s.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), timeout=min(remaining, 0.1))
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
        self._per_transport[transport] = self._per_transport.get(transport, 0) + 1
        self.metrics.open_streams.labels(transport=transport).inc()
        self.bus.subscribe(subscriber)
        return handle

    def _over_limit(self, transport: str, limit: int | None) -> str | None:
        s = self.settings
        if len(self._streams) >= s.max_streams:
            return f"too many open streams on this server (limit {s.max_streams}); retry shortly"
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
        await self.limits.close_stream(handle.user)
        self._per_transport[handle.transport] -= 1
        self._report_delivered(handle)
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

    def _report_delivered(self, handle: StreamHandle) -> None:
        fresh = handle.delivered - handle.reported
        if fresh:
            handle.reported = handle.delivered
            self.metrics.events_delivered.labels(transport=handle.transport).inc(fresh)

    def report_metrics(self) -> None:
        """Bring the per-stream counts into the metrics (``/metrics`` calls this)."""
        for handle in list(self._streams.values()):
            self._report_delivered(handle)
        self.metrics.backlog_max.set(self.largest_backlog)

    async def _tick(self) -> None:
        """Heartbeats and time limits for every stream, from one task."""
        while True:
            period = min(1.0, self.settings.sse_ping_seconds / 2, self.settings.ws_ping_seconds / 2)
            await asyncio.sleep(max(period, 0.05))
            now = time.monotonic()
            send_timeout = self.settings.stream_send_timeout_seconds
            for subscriber, handle in list(self._streams.items()):
                if handle.sending_since:
                    reason = handle.stall_reason(now, send_timeout)
                    if reason is not None and handle.stalled is None:
                        self._drop_stalled(handle, reason)
                elif now >= handle.deadline:
                    subscriber.wake(Wake.TIMEOUT)
                elif now - handle.last_send >= handle.ping_every:
                    handle.last_send = now
                    subscriber.wake(Wake.PING)
                elif subscriber.waiting and now - handle.last_send >= WRITER_LINGER:
                    handle.retire = True
                    subscriber.wake(Wake.NONE)

    def _drop_stalled(self, handle: StreamHandle, reason: str) -> None:
        """A reader that stopped reading: end its stream's task (blocked in a send)."""
        handle.stalled = reason
        handle.subscriber.close("stalled")
        self.metrics.stalled_disconnects.labels(transport=handle.transport, reason=reason).inc()
        log.info("dropped a %s stream whose reader stopped reading (%s)", handle.transport, reason)
        if handle.task is not None:
            handle.task.cancel()

    # -- catch-up -----------------------------------------------------------------------------

    async def catch_up(self, job: Job, after_seq: int | None) -> tuple[Job, list[Event] | None]:
        """``(job, events after after_seq)`` read after the stream subscribed; events ``None``
        means: send a snapshot (a fresh connect, a position the log no longer holds, or one
        beyond it)."""
        live = await self.store.get(job.id) or job
        if after_seq is None or after_seq > live.seq:
            return live, None
        stored = await self.store.events_after(job.id, after_seq)
        if stored is None or (stored[-1].seq if stored else after_seq) < live.seq:
            return live, None
        for event in stored:
            live = live.apply(event)
        return live, stored

    # -- streams ------------------------------------------------------------------------------

    def job_stream(
        self, handle: StreamHandle, job: Job, after_seq: int | None, encoder: Encoder
    ) -> Stream:
        """One job's stream, ending after its terminal event."""
        return Stream(self, handle, encoder, job=job, after=after_seq)

    def feed(
        self,
        handle: StreamHandle,
        owner: str | None,
        after_pos: int | None,
        encoder: FeedEncoder,
        recent_jobs: Callable[[], Awaitable[list[Job]]],
    ) -> Stream:
        """An all-jobs stream (``owner`` ``None``: everyone's), subscribed by ``open``.

        Fresh: the encoder's ``feed_snapshot`` of ``recent_jobs()`` at the store's current
        position. Resumed: every event after ``after_pos``, read from the store page by page; past
        ``feed_catch_up_limit`` events, a snapshot of every job whose events are skipped instead
        (``snapshot`` messages of at most ``FEED_SNAPSHOT_PAGE`` jobs; only the last carries the
        position to resume from). Never a silent gap. Then live events, unending."""
        return Stream(self, handle, encoder, owner=owner, after=after_pos, recent_jobs=recent_jobs)

    async def feed_catch_up(self, stream: Stream) -> AsyncGenerator[list[Any], None]:
        store = self.store
        encoder = cast(FeedEncoder, stream.encoder)
        owner = stream.owner
        after_pos = stream.after
        position = await store.feed_position()
        if after_pos is None or after_pos > position:
            # A fresh connect, or a position beyond the log (another deployment's, or garbage).
            assert stream.recent_jobs is not None
            unit = encoder.feed_snapshot(await stream.recent_jobs(), position)
            if unit is not None:
                yield [unit]
        else:
            position = after_pos
            replayed = 0
            limit = self.settings.feed_catch_up_limit
            while not stream.handle.subscriber.closed:
                page = await store.feed_events(owner, position, FEED_PAGE)
                if not page:
                    break
                if replayed + len(page) > limit:
                    # Read first: every job read after it is at least as new as this position.
                    top = await store.feed_position()
                    async for snapshots in self._feed_snapshots(owner, position, top, encoder):
                        yield snapshots
                    position = top
                    break
                units: list[Any] = []
                for event in page:
                    units.extend(_encode(encoder, event))
                replayed += len(page)
                position = page[-1].pos or position
                if units:
                    yield units
                if len(page) < FEED_PAGE:
                    break
        # Everything at or below it was in the snapshot or the replay.
        stream.after = position

    async def _feed_snapshots(
        self, owner: str | None, after_pos: int, top: int, encoder: FeedEncoder
    ) -> AsyncIterator[list[Any]]:
        """Snapshots of every job with events after ``after_pos``, in pages; the last page is
        marked with ``top``, the position they bring the client to."""
        store = self.store
        page = await store.changed_jobs(owner, after_pos, limit=FEED_SNAPSHOT_PAGE)
        while page:
            following = await store.changed_jobs(
                owner, after_pos, after_id=page[-1].id, limit=FEED_SNAPSHOT_PAGE
            )
            unit = encoder.feed_snapshot(page, top if not following else None)
            if unit is not None:
                yield [unit]
            page = following


def _encode(encoder: Encoder, event: Event) -> list[Any]:
    unit = encoder.event(event)
    if unit is None:
        return []
    return unit if isinstance(unit, list) else [unit]


class Stream:
    """What one stream sends: its catch-up (``opening()``: batches read from the store, once),
    then a batch per wake-up (``await subscriber.wait()``, then ``take()``).

    The live part is a plain object with a synchronous step rather than a generator: an idle
    stream keeps no suspended frame of its own, only its transport's loop waiting on the
    subscriber, and holds no job, snapshot or batch (docs/benchmarks.md, idle memory).
    ``after`` is the last seq sent (one job) or the feed position the live part starts after
    (all jobs); ``ended`` is set once the stream must end after what it last returned.
    """

    __slots__ = (
        "after",
        "by_seq",
        "encoder",
        "ended",
        "handle",
        "hub",
        "job",
        "owner",
        "recent_jobs",
    )

    def __init__(
        self,
        hub: StreamHub,
        handle: StreamHandle,
        encoder: Encoder,
        *,
        job: Job | None = None,
        owner: str | None = None,
        after: int | None = None,
        recent_jobs: Callable[[], Awaitable[list[Job]]] | None = None,
    ) -> None:
        self.hub = hub
        self.handle = handle
        self.encoder = encoder
        self.job = job
        self.owner = owner
        self.after = after
        self.recent_jobs = recent_jobs
        self.by_seq = job is not None
        self.ended = False

    @property
    def subscriber(self) -> Subscriber:
        return self.handle.subscriber

    def opening(self) -> AsyncGenerator[list[Any], None]:
        """The catch-up's batches; afterwards ``after`` is where the live part starts."""
        if not self.by_seq:
            return self.hub.feed_catch_up(self)
        return self._job_catch_up()

    async def _job_catch_up(self) -> AsyncGenerator[list[Any], None]:
        job, self.job = self.job, None  # nothing of it is kept while the stream is idle
        assert job is not None
        after_seq = self.after
        encoder = self.encoder
        live, backlog = await self.hub.catch_up(job, after_seq)
        del job
        units: list[Any] = []
        last = live.seq
        if backlog is None:
            unit = encoder.snapshot(live)
            if unit is not None:
                units.extend(unit if isinstance(unit, list) else [unit])
        else:
            last = after_seq if after_seq is not None else live.seq
            for event in backlog:
                units.extend(_encode(encoder, event))
                last = event.seq
        self.after = last
        if live.finished or self.handle.subscriber.closed:
            self.ended = True
        del live, backlog
        if units:
            yield units

    def take(self) -> list[Any]:
        """What a wake-up brings, encoded: the pending events (past ``after``), a heartbeat, or
        the time limit's last message; sets ``ended`` when the stream must end after it."""
        handle = self.handle
        subscriber = handle.subscriber
        encoder = self.encoder
        by_seq = self.by_seq
        after = self.after
        units: list[Any] = []
        ended = False
        delivered = 0
        newest = 0
        for event in subscriber.drain():
            if by_seq:
                if after is not None and event.seq <= after:
                    continue
                after = event.seq
            elif event.pos is not None and after is not None and event.pos <= after:
                continue
            delivered += 1
            newest = event.ts_us
            unit = encoder.event(event)
            if unit is not None:
                if isinstance(unit, list):
                    units.extend(unit)
                else:
                    units.append(unit)
            if by_seq and encoder.ends_with(event):
                ended = True
                break
        if by_seq:
            self.after = after
        flags = subscriber.take_flags()
        if delivered:
            handle.delivered += delivered
            handle.batches += 1
            if handle.batches & LATENCY_SAMPLE == 1:  # the first batch, then every 16th
                self.hub.metrics.publish_to_send.observe(max(time.time() - newest / 1e6, 0.0))
        if flags:
            if not ended and flags & Wake.TIMEOUT:
                unit = encoder.timeout()
                if unit is not None:
                    units.append(unit)
                ended = True
            elif not units and flags & Wake.PING:
                unit = encoder.ping()
                if unit is not None:
                    units.append(unit)
            if flags & Wake.RESUME:
                handle.resume_requested = True
        if subscriber.close_reason is not None:
            ended = True
        if units:
            handle.touch()
        self.ended = ended
        return units


class StreamWriter:
    """Runs a stream's writes in a task that exists only while there is something to write.

    The connection's own task waits for the client (``serve``: its messages, its disconnect),
    as a bare ASGI app does; a wake-up of the subscriber that finds no writer starts one
    (``write``: it writes until it has waited ``WRITER_LINGER`` seconds with nothing to do, then
    returns, and a later wake-up starts a new one). An idle stream so holds no task, coroutine
    or future of its own beyond the connection's (docs/benchmarks.md, idle memory), and a busy
    one keeps its writer, paying for no task per event. When ``write`` ends the stream
    (``finish``), the connection's task stops waiting for the client.

    A transport subclasses it with ``write`` (its send loop; ``await self.next()`` between
    batches) and ``received`` (a client message; ``True`` for the disconnect).
    """

    __slots__ = ("_main", "_watching", "finished", "handle")

    def __init__(self, handle: StreamHandle) -> None:
        self.handle = handle
        self._main: asyncio.Task[Any] | None = None
        self._watching = False
        self.finished = False

    async def write(self) -> None:
        raise NotImplementedError

    def received(self, message: Any) -> bool:
        raise NotImplementedError

    async def serve(
        self,
        receive: Callable[[], Awaitable[Any]],
        on_close: Callable[[StreamHandle], Awaitable[None]] | None = None,
    ) -> None:
        """Run in the connection's task: the opening write, then the client's messages until
        its disconnect or the stream's end; then stop the writer and ``on_close``."""
        handle = self.handle
        self._main = asyncio.current_task()
        handle.subscriber.on_wake = self.kick
        try:
            self.kick()
            if not self.finished:
                self._watching = True
                try:
                    while not self.received(await receive()):
                        pass
                except asyncio.CancelledError:
                    if not self.finished:
                        raise
                    if self._main is not None:
                        self._main.uncancel()
                finally:
                    self._watching = False
        finally:
            await self.stop()
            if on_close is not None:
                await on_close(handle)

    def kick(self) -> None:
        if self.handle.task is None and not self.finished:
            self.handle.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.write()
        except asyncio.CancelledError:
            self.finish()
            raise
        except Exception:
            log.exception("a %s stream failed", self.handle.transport)
            self.finish()
        finally:
            if self.handle.task is asyncio.current_task():
                self.handle.task = None

    async def next(self) -> bool:
        """Wait for the subscriber; ``False``: nothing came for ``WRITER_LINGER`` s (return)."""
        handle = self.handle
        subscriber = handle.subscriber
        while not subscriber.ready:
            if handle.retire:
                handle.retire = False
                return False
            await subscriber.wait()
        handle.retire = False
        return True

    def finish(self) -> None:
        """The stream has ended: no more writers, and the connection's task stops waiting."""
        if self.finished:
            return
        self.finished = True
        main = self._main
        if self._watching and main is not None and main is not asyncio.current_task():
            main.cancel()

    async def stop(self) -> None:
        """No more writes: end the writer task, if one runs, and wait for it."""
        self.finished = True
        self.handle.subscriber.on_wake = None
        task = self.handle.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _overflow_fields(handle: StreamHandle) -> dict[str, object]:
    """The log fields of a stream dropped for falling behind."""
    return {
        "event": "stream.overflow",
        "user": handle.user,
        "transport": handle.transport,
        "job_id": handle.subscriber.job_id,
        "seconds_open": round(time.monotonic() - handle.opened, 3),
    }
