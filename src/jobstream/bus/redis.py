"""The Redis bus: live fan-out across instances and workers, and control messages between them.

Data flow. Every event is stored before it is published (store-first), so Redis carries only
the live path and holds no history: the store's log is the recent-events window every instance
shares, and it is exact. Per instance:

- **publish**: delivered to this instance's own subscribers at once (the in-process stage, a
  ``MemoryBus``), and queued for Redis; one task sends what is queued as one ``PUBLISH`` of a
  batch, so a burst costs few round trips whatever its size.
- **receive**: one pub/sub connection per instance (not per stream) on two channels, events and
  control. A batch is decoded once into ``Event`` objects shared by every local subscriber, which
  encode each event once per wire format (the frame caches on ``Event``).
- **order**: events reach the local stage in ``pos`` order (the store assigns positions in commit
  order, without holes in normal operation). Batches from several publishers can arrive out of
  that order; an event that comes early waits for the ones before it, briefly, then the missing
  ones are read from the store (``feed_events``), which has every event the moment it is
  published. So a stream never sees seq 11 before 10, and the all-jobs cursor never passes an
  event the client has not had.
- **loss of Redis**: streams stay open (their heartbeats come from the hub, not from Redis);
  while the subscription is down the bus reads new events from the store on every reconnect
  attempt, and when it is back it catches up from the store from the last position it delivered.
  If more than ``resync_limit`` events were missed, it ends every local stream instead (reason
  ``resync``): each client reconnects and catches up through the stream's own path, which falls
  back to a ``snapshot`` where the events are gone. Never a silent gap.

Keys and channels: ``jobstream.bus.keys``; every one under ``JOBSTREAM_REDIS_PREFIX``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from jobstream import codec
from jobstream.bus.base import ControlHandler, EventBus
from jobstream.bus.keys import RedisKeys
from jobstream.bus.memory import MemoryBus
from jobstream.bus.subscriber import Subscriber
from jobstream.models import Event
from jobstream.store.base import JobStore

log = logging.getLogger(__name__)

PUBLISH_BATCH = 500
"""Events per ``PUBLISH`` at most (a message stays small enough for every subscriber's buffer)."""
FILL_PAGE = 1000


class RedisBus(EventBus):
    def __init__(
        self,
        url: str,
        prefix: str = "jobstream:",
        *,
        events: bool = True,
        hold_seconds: float = 0.02,
        resync_limit: int = 10_000,
    ) -> None:
        """``events=False``: control messages only (a worker process, which publishes events but
        has no reader of its own)."""
        super().__init__()
        self.url = url
        self.keys = RedisKeys(prefix)
        self.instance = secrets.token_hex(8)
        self.receives_events = events
        self.hold_seconds = hold_seconds
        self.resync_limit = resync_limit
        self.local = MemoryBus()
        self._store: JobStore | None = None
        self._redis: aioredis.Redis | None = None
        self._listener: aioredis.Redis | None = None
        self._top: int | None = None
        """The highest position delivered here, in order (``None``: no store, no ordering)."""
        self._held: dict[int, Event] = {}
        self._fill_timer: asyncio.TimerHandle | None = None
        self._filling: asyncio.Task[None] | None = None
        self._outbox: list[dict[str, Any]] = []
        self._outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self.connected = False
        self.reconnects = 0
        self.store_fills = 0
        self.resyncs = 0

    @property
    def listener_name(self) -> str:
        """The subscription connection's name in ``CLIENT LIST``."""
        return f"{self.keys.prefix}listener:{self.instance}"

    def attach_store(self, store: JobStore) -> None:
        """Order deliveries by ``pos`` and fill gaps from this store (shared by every instance)."""
        self._store = store

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._redis = aioredis.Redis.from_url(
            self.url, health_check_interval=10, socket_connect_timeout=5
        )
        await self._redis.ping()  # an unreachable Redis stops the server at start, clearly
        # No silent retries on the subscription: redis-py would reconnect and re-subscribe on
        # its own, and whatever was published meanwhile would be skipped without a word. This
        # bus reconnects itself, and catches up from the store when it does.
        self._listener = aioredis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=5,
            client_name=self.listener_name,
        )
        self._tasks = [
            asyncio.create_task(self._listen(), name="jobstream-redis-listen"),
            asyncio.create_task(self._flush_loop(), name="jobstream-redis-publish"),
        ]
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)
        if self._store is not None and self.receives_events:
            # Subscribed first, then read: nothing falls between the two.
            self._top = await self._store.feed_position()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._flush_now(), timeout=2)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a task stuck in a socket call must not hold up shutdown.
            await asyncio.wait(tasks, timeout=2)
        if self._fill_timer is not None:
            self._fill_timer.cancel()
        if self._filling is not None:
            self._filling.cancel()
        await self.local.close()
        for client in (self._listener, self._redis):
            if client is not None:
                await client.aclose()
        self._redis = self._listener = None

    async def ping(self) -> None:
        if self._redis is None:
            raise RuntimeError("the Redis bus is not started")
        await self._redis.ping()
        if not self.connected:
            raise RuntimeError("the Redis subscription is down (reconnecting)")

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, events: Sequence[Event]) -> None:
        self.publish_soon(events)

    def publish_soon(self, events: Sequence[Event]) -> None:
        if not events:
            return
        self._offer(events)
        self._outbox.extend(event.to_record() for event in events)
        self._outbox_ready.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            await self._flush_now()

    async def _flush_now(self) -> None:
        """Send what is queued, in batches. A failure loses nothing: the events are stored, and
        every instance reads them from the store when its link is back."""
        while self._outbox and self._redis is not None:
            records = self._outbox[:PUBLISH_BATCH]
            del self._outbox[:PUBLISH_BATCH]
            payload = codec.dumps({"i": self.instance, "e": records})
            try:
                await self._redis.publish(self.keys.events, payload)
            except (RedisError, OSError) as exc:
                log.warning("publishing %d events to Redis failed: %s", len(records), exc)

    async def publish_control(self, message: dict[str, Any]) -> None:
        await self.local._dispatch_control(message)
        if self._redis is None:
            return
        try:
            await self._redis.publish(
                self.keys.control, codec.dumps({"i": self.instance, "m": message})
            )
        except (RedisError, OSError) as exc:
            # Cancel has a backstop: a worker learns of it when it renews its lease.
            log.warning("sending a control message to Redis failed: %s", exc)

    def on_control(self, handler: ControlHandler) -> None:
        self.local.on_control(handler)

    # -- subscribers (the local stage) --------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        return self.local.subscribe(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.local.unsubscribe(subscriber)

    @property
    def subscriber_count(self) -> int:
        return self.local.subscriber_count

    # -- receiving ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        """The one subscription of this instance, kept up whatever happens to the link."""
        assert self._listener is not None
        channels = [self.keys.control]
        if self.receives_events:
            channels.append(self.keys.events)
        backoff = 0.05
        lost = False
        while True:
            pubsub = self._listener.pubsub()
            try:
                await pubsub.subscribe(*channels)
                confirmed = 0
                while confirmed < len(channels):
                    message = await pubsub.get_message(timeout=5)
                    if message is not None and message["type"] == "subscribe":
                        confirmed += 1
                    elif message is None:
                        raise TimeoutError("Redis did not confirm the subscription")
                self.connected = True
                self._subscribed.set()
                if lost:
                    log.warning("Redis subscription is back; catching up from the store")
                    self.reconnects += 1
                    await self._catch_up(resync=True)
                    lost = False
                backoff = 0.05
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._receive(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected or not lost:
                    log.warning("Redis subscription lost (%s); reconnecting", exc)
                self.connected = False
                lost = True
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), timeout=1)  # type: ignore[no-untyped-call]
            # Down: keep the streams moving from the store while the link is retried.
            with contextlib.suppress(Exception):
                await self._catch_up(resync=False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _receive(self, channel: bytes | str, data: bytes) -> None:
        try:
            message = codec.loads(data)
        except ValueError:
            log.warning("ignored a malformed message on %r", channel)
            return
        if message.get("i") == self.instance:
            return  # ours: delivered locally when published
        name = channel.decode() if isinstance(channel, bytes) else channel
        if name == self.keys.control:
            task = asyncio.ensure_future(self.local._dispatch_control(message.get("m") or {}))
            self._tasks.append(task)  # kept referenced until done
            task.add_done_callback(self._forget)
            return
        try:
            events = [Event.from_record(record) for record in message["e"]]
        except (KeyError, TypeError, ValueError):
            log.warning("ignored a malformed event batch")
            return
        self._offer(events)

    def _forget(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    # -- ordering -----------------------------------------------------------------------------

    def _offer(self, events: Sequence[Event]) -> None:
        """Deliver in ``pos`` order: what comes early waits for what comes before it."""
        top = self._top
        if top is None:
            self.local.deliver(events)
            return
        ready: list[Event] = []
        held = self._held
        for event in events:
            pos = event.pos
            if pos is None:
                ready.append(event)
            elif pos <= top:
                continue  # delivered already (from the store, or a duplicate)
            elif pos == top + 1:
                ready.append(event)
                top = pos
                while top + 1 in held:
                    top += 1
                    ready.append(held.pop(top))
            else:
                held[pos] = event
        self._top = top
        if ready:
            self.local.deliver(ready)
        if held and self._fill_timer is None and self._filling is None:
            loop = asyncio.get_running_loop()
            self._fill_timer = loop.call_later(self.hold_seconds, self._start_fill)

    def _start_fill(self) -> None:
        self._fill_timer = None
        if self._held and self._filling is None:
            self._filling = asyncio.ensure_future(self._fill_gap())

    async def _fill_gap(self) -> None:
        """The events before an early one did not come over Redis in time: read them from the
        store (they are stored before anyone publishes them)."""
        try:
            self.store_fills += 1
            while self._held and self._top is not None:
                upto = min(self._held)
                if not await self._deliver_from_store(upto):
                    break
        except Exception:
            log.exception("filling a gap from the store failed; retrying")
            await asyncio.sleep(0.5)
        finally:
            self._filling = None
            if self._held:
                self._start_fill()

    async def _deliver_from_store(self, upto: int | None) -> bool:
        """Deliver the stored events after the top (up to ``upto``, or all); False if the
        store had nothing more."""
        assert self._store is not None and self._top is not None
        page = await self._store.feed_events(None, self._top, FILL_PAGE)
        if upto is not None:
            page = [event for event in page if event.pos is not None and event.pos < upto]
        if not page:
            if upto is not None and self._top is not None and upto > self._top + 1:
                # A hole in the positions (an event removed since): step over it.
                self._top = upto - 1
                self._release_held()
                return True
            return False
        self._offer(page)
        self._release_held()
        return True

    def _release_held(self) -> None:
        top = self._top
        assert top is not None
        for pos in [pos for pos in self._held if pos <= top]:
            del self._held[pos]
        ready = []
        while top + 1 in self._held:
            top += 1
            ready.append(self._held.pop(top))
        self._top = top
        if ready:
            self.local.deliver(ready)

    async def _catch_up(self, *, resync: bool) -> None:
        """Deliver what the store has after our top (the link was down). Beyond
        ``resync_limit`` events, end the local streams instead: they catch up on reconnect."""
        if self._store is None or self._top is None:
            if resync:
                self._end_streams()
            return
        delivered = 0
        while True:
            if delivered >= self.resync_limit:
                self._top = await self._store.feed_position()
                self._held.clear()
                self._end_streams()
                return
            before = self._top
            if not await self._deliver_from_store(None) or self._top == before:
                return
            delivered += self._top - before

    def _end_streams(self) -> None:
        self.resyncs += 1
        log.warning("ending every stream here: too much was missed while Redis was away")
        for subscriber in self.local._all_subscribers():
            subscriber.close("resync")
            self.local.unsubscribe(subscriber)


__all__ = ["RedisBus"]
