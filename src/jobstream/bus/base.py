"""The event bus contract: how events travel from the worker that made them to every reader.

The store is the durable log; the bus is the live path. A worker publishes an event as soon as
it exists (before the store has it: progress is persisted in batches), so the bus also keeps a
short in-flight window of recent events that ``recent`` hands to a reader catching up. A reader
that subscribes, then reads the store, then ``recent``, and skips what it already has, misses
nothing and repeats nothing.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from jobstream.bus.subscriber import Subscriber
from jobstream.models import Event

ControlHandler = Callable[[dict[str, Any]], Awaitable[None] | None]


class EventBus(abc.ABC):
    """Fan-out of job events to subscribers, plus a control channel between instances."""

    def __init__(self) -> None:
        self.overflow_disconnects = 0

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect; after this, publish and subscribe work."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect and close every subscriber with reason ``"shutdown"``."""

    @abc.abstractmethod
    async def publish(self, events: Sequence[Event]) -> None:
        """Deliver events, in order, to every subscriber of their job, owner, or everything."""

    @abc.abstractmethod
    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        """Register a reader; events published from now on reach it. Synchronous on purpose."""

    @abc.abstractmethod
    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove a reader; idempotent."""

    @abc.abstractmethod
    async def recent(self, job_id: str, after_seq: int) -> list[Event]:
        """The job's events with ``seq > after_seq`` still in the in-flight window, in order."""

    @abc.abstractmethod
    async def recent_for_owner(self, owner: str | None, after_cursor: int) -> list[Event]:
        """An owner's (``None``: everyone's) events with ``cursor > after_cursor`` in the window."""

    @abc.abstractmethod
    async def publish_control(self, message: dict[str, Any]) -> None:
        """Send a control message (e.g. a cancel request) to every instance's control handlers."""

    @abc.abstractmethod
    def on_control(self, handler: ControlHandler) -> None:
        """Call ``handler`` with every control message, this instance's own included."""

    @property
    @abc.abstractmethod
    def subscriber_count(self) -> int:
        """How many readers are subscribed now."""

    async def ping(self) -> None:  # noqa: B027 - optional hook: a remote bus checks its link
        """Raise if the bus cannot deliver."""
