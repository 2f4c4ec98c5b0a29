"""The in-process bus: the embedded default, and the local fan-out stage of a remote bus."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from jobstream.bus.base import ControlHandler, EventBus
from jobstream.bus.subscriber import Subscriber
from jobstream.models import Event

log = logging.getLogger(__name__)


class MemoryBus(EventBus):
    def __init__(
        self, *, window_per_job: int = 128, window_jobs: int = 1024, window_total: int = 1024
    ) -> None:
        super().__init__()
        self._by_job: dict[str, set[Subscriber]] = {}
        self._by_owner: dict[str, set[Subscriber]] = {}
        self._everything: set[Subscriber] = set()
        self._count = 0
        self._window_per_job = window_per_job
        self._window_jobs = window_jobs
        self._job_windows: OrderedDict[str, deque[Event]] = OrderedDict()
        self._window: deque[Event] = deque(maxlen=window_total)
        self._control: list[ControlHandler] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for subscriber in self._all_subscribers():
            subscriber.close("shutdown")
        self._by_job.clear()
        self._by_owner.clear()
        self._everything.clear()
        self._count = 0

    def _all_subscribers(self) -> list[Subscriber]:
        subs: list[Subscriber] = list(self._everything)
        for group in (*self._by_job.values(), *self._by_owner.values()):
            subs.extend(group)
        return subs

    async def publish(self, events: Sequence[Event]) -> None:
        self.deliver(events)

    def deliver(self, events: Sequence[Event]) -> None:
        """Publish synchronously (the hot path; a remote bus calls it for what it receives)."""
        for event in events:
            self._remember(event)
            for group in (
                self._by_job.get(event.job_id),
                self._by_owner.get(event.owner),
                self._everything,
            ):
                if group:
                    for subscriber in group:
                        subscriber.push(event)
                        if subscriber.close_reason == "overflow":
                            self.overflow_disconnects += 1
                            self._discard(subscriber)

    def _remember(self, event: Event) -> None:
        # The window is bounded twice: events per job, and jobs (least recently active dropped).
        windows = self._job_windows
        window = windows.get(event.job_id)
        if window is None:
            window = windows[event.job_id] = deque(maxlen=self._window_per_job)
            if len(windows) > self._window_jobs:
                windows.popitem(last=False)
        else:
            windows.move_to_end(event.job_id)
        window.append(event)
        self._window.append(event)

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        if subscriber.job_id is not None:
            self._by_job.setdefault(subscriber.job_id, set()).add(subscriber)
        elif subscriber.owner is not None:
            self._by_owner.setdefault(subscriber.owner, set()).add(subscriber)
        else:
            self._everything.add(subscriber)
        self._count += 1
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._discard(subscriber)

    def _discard(self, subscriber: Subscriber) -> None:
        if subscriber.job_id is not None:
            key, table = subscriber.job_id, self._by_job
        elif subscriber.owner is not None:
            key, table = subscriber.owner, self._by_owner
        else:
            if subscriber in self._everything:
                self._everything.discard(subscriber)
                self._count -= 1
            return
        group = table.get(key)
        # A set mutated while ``deliver`` iterates it would raise, so removal builds a new set.
        if group is not None and subscriber in group:
            rest = group - {subscriber}
            if rest:
                table[key] = rest
            else:
                del table[key]
            self._count -= 1

    async def recent(self, job_id: str, after_seq: int) -> list[Event]:
        window = self._job_windows.get(job_id)
        if not window:
            return []
        return [event for event in window if event.seq > after_seq]

    async def recent_for_owner(self, owner: str | None, after_cursor: int) -> list[Event]:
        return [
            event
            for event in self._window
            if event.cursor > after_cursor and (owner is None or event.owner == owner)
        ]

    async def publish_control(self, message: dict[str, Any]) -> None:
        await self._dispatch_control(message)

    async def _dispatch_control(self, message: dict[str, Any]) -> None:
        for handler in list(self._control):
            try:
                outcome = handler(message)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("control handler failed for %r", message.get("type"))

    def on_control(self, handler: ControlHandler) -> None:
        self._control.append(handler)

    @property
    def subscriber_count(self) -> int:
        return self._count
