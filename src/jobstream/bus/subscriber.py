"""One reader's bounded buffer: the single point a stream waits on.

Every stream (SSE, WebSocket, long-poll, a profile) owns one ``Subscriber``. The bus pushes
events into it; heartbeats, the stream time limit, client disconnects and server shutdown wake it
through the same future, so a stream's send loop awaits exactly one thing and never races tasks
per event.

Backpressure policy (litestar's ``max_backlog`` idea, with a distinction it lacks):
- below ``soft_limit`` pending events every event is kept, so a reader that keeps up sees all;
- at or past ``soft_limit`` a new progress event replaces the pending progress of the same job
  (the newest wins), so a slow reader's backlog stops growing with progress;
- status, log and terminal events are never dropped; if the backlog still passes ``hard_limit``
  the subscriber is closed with reason ``"overflow"`` and the stream ends (the client resumes
  from its last ``seq`` and loses nothing).
Push is amortised O(1): a replaced progress event leaves a ``None`` hole that ``drain`` skips,
and the holes are compacted away once they outnumber the live events, so a reader that never
drains holds at most about twice ``soft_limit`` slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from jobstream.models import Event, EventType


class Wake:
    """Why a reader was woken with no event: bits of a plain ``int`` (an ``IntFlag``'s
    operators build enum members on the hot path: each wake-up paid for two)."""

    NONE = 0
    PING = 1
    TIMEOUT = 2
    RESUME = 4
    """The client asked to replay from a sequence number (WebSocket ``resume`` message)."""


class Subscriber:
    __slots__ = (
        "_live",
        "_loop",
        "_pending",
        "_progress_at",
        "_waiter",
        "close_reason",
        "coalesced",
        "everything",
        "hard_limit",
        "job_id",
        "on_wake",
        "owner",
        "soft_limit",
        "wake_flags",
    )

    def __init__(
        self,
        *,
        job_id: str | None = None,
        owner: str | None = None,
        everything: bool = False,
        soft_limit: int = 256,
        hard_limit: int = 4096,
    ) -> None:
        if sum((job_id is not None, owner is not None, everything)) != 1:
            raise ValueError("subscribe to exactly one of: a job, an owner, or everything")
        self.job_id = job_id
        self.owner = owner
        self.everything = everything
        self.soft_limit = soft_limit
        self.hard_limit = hard_limit
        # Both made when needed: an idle reader holds neither (docs/benchmarks.md, idle memory).
        self._pending: list[Event | None] | None = None
        self._progress_at: dict[str, int] | None = None
        """Where each job's newest pending progress is; built once the backlog reaches
        ``soft_limit`` (below it nothing is replaced, so a push keeps no index)."""
        self._live = 0
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.close_reason: str | None = None
        self.coalesced = 0
        self.wake_flags = Wake.NONE
        self.on_wake: Callable[[], None] | None = None
        """Called on a wake-up that finds no reader waiting (``streams/lifecycle.py``'s
        ``StreamWriter`` starts its task from it)."""

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    @property
    def backlog(self) -> int:
        return self._live

    def push(self, event: Event) -> None:
        if self.close_reason is not None:
            return
        pending = self._pending
        if pending is None:
            pending = self._pending = []
        if event.type is EventType.PROGRESS and self._live >= self.soft_limit:
            index = self._progress_at
            if index is None:
                index = self._index(pending)
            at = index.get(event.job_id)
            if at is not None:
                pending[at] = None
                self._live -= 1
                self.coalesced += 1
                if len(pending) > 2 * self._live + 64:
                    pending = self._compact(pending)
                    index = self._index(pending)
            index[event.job_id] = len(pending)
        pending.append(event)
        self._live += 1
        if self._live > self.hard_limit:
            self.close("overflow")
            return
        self._wake()

    def _index(self, pending: list[Event | None]) -> dict[str, int]:
        index = self._progress_at = {
            e.job_id: i
            for i, e in enumerate(pending)
            if e is not None and e.type is EventType.PROGRESS
        }
        return index

    def _compact(self, pending: list[Event | None]) -> list[Event | None]:
        live: list[Event | None] = [e for e in pending if e is not None]
        self._pending = live
        return live

    def wake(self, flags: int) -> None:
        """Ask the reader to send a heartbeat or to end on its time limit."""
        self.wake_flags |= flags
        self._wake()

    def close(self, reason: str) -> None:
        """End the reader's wait; ``drain`` still hands over what was pending."""
        if self.close_reason is None:
            self.close_reason = reason
        self._wake()

    @property
    def ready(self) -> bool:
        """``wait`` would return at once."""
        return bool(self._pending) or bool(self.wake_flags) or self.close_reason is not None

    @property
    def waiting(self) -> bool:
        """A reader is waiting in ``wait``."""
        return self._waiter is not None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        elif self.on_wake is not None:
            self.on_wake()

    def drain(self) -> list[Event]:
        """Take every pending event, oldest first, without waiting."""
        pending = self._pending
        if not pending:
            return []
        self._pending = None
        self._progress_at = None
        self._live = 0
        return [event for event in pending if event is not None]

    async def wait(self) -> None:
        """Return when something is pending, a wake flag is set, or the subscriber is closed."""
        if self._pending or self.wake_flags or self.close_reason is not None:
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        await waiter

    def take_flags(self) -> int:
        flags = self.wake_flags
        self.wake_flags = Wake.NONE
        return flags
