"""The event bus contract: how events travel from the process that stored them to every reader.

The store is the durable log; the bus is the live path. Every event is stored before it is
published, so the bus keeps nothing for catching up: a reader subscribes first, then reads the
store, and skips what it already has (by seq for one job, by position for all of a caller's
jobs); it misses nothing and repeats nothing.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from jobstream.bus.subscriber import Subscriber
from jobstream.models import Event

ControlHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
log = logging.getLogger(__name__)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # Stored already: readers catch up from the store when the bus is back.
        log.error("publishing stored events failed", exc_info=task.exception())


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

    def publish_soon(self, events: Sequence[Event]) -> None:
        """``publish`` from synchronous code, without waiting (in order with other calls of
        it). The memory bus delivers at once; a network bus sends in the background."""
        task = asyncio.ensure_future(self.publish(events))
        task.add_done_callback(_log_failure)

    @abc.abstractmethod
    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        """Register a reader; events published from now on reach it. Synchronous on purpose."""

    @abc.abstractmethod
    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove a reader; idempotent."""

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

    def attach_store(self, store: Any) -> None:  # noqa: B027 - optional hook
        """The store every instance shares: a network bus orders deliveries by position and
        fills what it missed from it. (The in-process bus needs nothing.)"""

    async def ping(self) -> None:  # noqa: B027 - optional hook: a remote bus checks its link
        """Raise if the bus cannot deliver."""
