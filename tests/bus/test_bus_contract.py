"""The event bus contract, one suite for every ``EventBus``.

Add a backend by adding a factory to ``BUS_FACTORIES`` (a remote bus delivers asynchronously, so
the tests wait for deliveries instead of assuming them synchronous).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from jobstream.bus import EventBus, MemoryBus, Subscriber
from jobstream.models import Event, EventType

BusFactory = Callable[[], Awaitable[EventBus]]


async def _memory_bus() -> EventBus:
    return MemoryBus()


async def _redis_bus() -> EventBus:
    """A Redis bus on a prefix of its own (pub/sub leaves no keys to clean up)."""
    from jobstream.bus.redis import RedisBus
    from redisdb import REDIS_URL, reachable

    await (await reachable()).aclose()
    return RedisBus(REDIS_URL, f"jobstream-test-{secrets.token_hex(6)}:")


BUS_FACTORIES = [
    pytest.param(_memory_bus, id="memory"),
    pytest.param(_redis_bus, id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=BUS_FACTORIES)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    factory: BusFactory = request.param
    instance = await factory()
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()


_ts_us = 1_000_000


def ev(job_id: str, seq: int, owner: str = "alice", kind: EventType = EventType.PROGRESS) -> Event:
    global _ts_us
    _ts_us += 1
    return Event(
        job_id=job_id,
        owner=owner,
        seq=seq,
        type=kind,
        data={"progress": float(seq)} if kind is EventType.PROGRESS else {"message": "m"},
        ts_us=_ts_us,
    )


async def take(subscriber: Subscriber, count: int, within: float = 2.0) -> list[Event]:
    """Exactly ``count`` events, waiting for them as a stream would."""
    got: list[Event] = []

    async def fill() -> None:
        while len(got) < count:
            await subscriber.wait()
            got.extend(subscriber.drain())
            assert not subscriber.closed or len(got) >= count, subscriber.close_reason

    await asyncio.wait_for(fill(), within)
    assert len(got) == count, [(e.job_id, e.seq) for e in got]
    return got


async def settle(bus: EventBus) -> None:
    """Publish a marker and wait until an everything-subscriber has it: whatever was published
    before has then been delivered everywhere (the bus keeps order)."""
    probe = bus.subscribe(Subscriber(everything=True))
    try:
        marker = ev("__probe__", 1, owner="__probe__")
        await bus.publish([marker])
        while True:
            events = await take(probe, 1)
            if events[0].job_id == "__probe__":
                return
    finally:
        bus.unsubscribe(probe)


def leftovers(subscriber: Subscriber) -> list[Event]:
    """What is still pending, without the probes ``settle`` sent."""
    return [e for e in subscriber.drain() if e.job_id != "__probe__"]


def keys(events: list[Event]) -> list[tuple[str, int]]:
    return [(e.job_id, e.seq) for e in events]


async def test_publish_reaches_job_owner_and_everything_subscribers_in_order(
    bus: EventBus,
) -> None:
    by_job = bus.subscribe(Subscriber(job_id="j1"))
    other_job = bus.subscribe(Subscriber(job_id="j2"))
    by_owner = bus.subscribe(Subscriber(owner="alice"))
    other_owner = bus.subscribe(Subscriber(owner="bob"))
    everything = bus.subscribe(Subscriber(everything=True))

    published = [
        ev("j1", 1),
        ev("j2", 1, owner="bob"),
        ev("j1", 2, kind=EventType.LOG),
        ev("j3", 1),
        ev("j1", 3, kind=EventType.COMPLETED),
    ]
    await bus.publish(published[:2])
    await bus.publish(published[2:])

    assert keys(await take(by_job, 3)) == [("j1", 1), ("j1", 2), ("j1", 3)]
    assert keys(await take(other_job, 1)) == [("j2", 1)]
    assert keys(await take(by_owner, 4)) == [("j1", 1), ("j1", 2), ("j3", 1), ("j1", 3)]
    assert keys(await take(other_owner, 1)) == [("j2", 1)]
    got = await take(everything, 5)
    assert [e.to_record() for e in got] == [e.to_record() for e in published]
    assert [e.encoded for e in got] == [e.encoded for e in published]

    await settle(bus)
    for subscriber in (by_job, other_job, by_owner, other_owner, everything):
        assert leftovers(subscriber) == []  # nothing twice, nothing foreign


async def test_one_event_object_is_shared_by_every_subscriber(bus: EventBus) -> None:
    readers = [
        bus.subscribe(Subscriber(job_id="j1")),
        bus.subscribe(Subscriber(job_id="j1")),
        bus.subscribe(Subscriber(owner="alice")),
        bus.subscribe(Subscriber(everything=True)),
    ]
    await bus.publish([ev("j1", 1), ev("j1", 2)])
    received = [await take(reader, 2) for reader in readers]
    for position in range(2):
        first = received[0][position]
        encoded = first.encoded
        for other in received[1:]:
            assert other[position] is first
            assert other[position].encoded is encoded  # encoded once, the same bytes object


async def test_memory_bus_hands_over_the_published_object(bus: EventBus) -> None:
    if not isinstance(bus, MemoryBus):
        pytest.skip("only an in-process bus delivers the publisher's own object")
    reader = bus.subscribe(Subscriber(everything=True))
    event = ev("j1", 1)
    await bus.publish([event])
    assert (await take(reader, 1))[0] is event


async def test_unsubscribe_stops_delivery_and_restores_count(bus: EventBus) -> None:
    baseline = bus.subscriber_count
    job_reader = bus.subscribe(Subscriber(job_id="j1"))
    owner_reader = bus.subscribe(Subscriber(owner="alice"))
    all_reader = bus.subscribe(Subscriber(everything=True))
    kept = bus.subscribe(Subscriber(job_id="j1"))
    assert bus.subscriber_count == baseline + 4

    for reader in (job_reader, owner_reader, all_reader):
        bus.unsubscribe(reader)
        bus.unsubscribe(reader)  # idempotent
    assert bus.subscriber_count == baseline + 1

    await bus.publish([ev("j1", 1)])
    assert keys(await take(kept, 1)) == [("j1", 1)]
    await settle(bus)
    for reader in (job_reader, owner_reader, all_reader):
        assert leftovers(reader) == []

    bus.unsubscribe(kept)
    assert bus.subscriber_count == baseline
    await bus.publish([ev("j1", 2)])
    await settle(bus)
    assert leftovers(kept) == []
    assert bus.subscriber_count == baseline


async def test_events_arrive_whole_with_their_position(bus: EventBus) -> None:
    """What a subscriber gets is the stored event: every field, ``pos`` included (the
    all-jobs streams' cursor)."""
    watcher = bus.subscribe(Subscriber(everything=True))
    published = [ev("j1", 1), ev("j2", 1, owner="bob", kind=EventType.LOG)]
    for number, event in enumerate(published, start=41):
        event.pos = number
    await bus.publish(published)
    got = await take(watcher, 2)
    assert [e.to_record() for e in got] == [e.to_record() for e in published]
    assert [e.pos for e in got] == [41, 42]
    bus.unsubscribe(watcher)


async def test_control_messages_reach_every_handler(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen_sync: list[dict[str, Any]] = []
    seen_async: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    def failing(message: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    def sync_handler(message: dict[str, Any]) -> None:
        seen_sync.append(message)

    async def async_handler(message: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen_async.append(message)
        if len(seen_async) == 2:
            arrived.set()

    bus.on_control(failing)  # one broken handler does not starve the others
    bus.on_control(sync_handler)
    bus.on_control(async_handler)
    with caplog.at_level(logging.ERROR):
        await bus.publish_control({"type": "cancel", "job_id": "j1"})
        await bus.publish_control({"type": "cancel", "job_id": "j2"})
        await asyncio.wait_for(arrived.wait(), 2)
    expected = [{"type": "cancel", "job_id": "j1"}, {"type": "cancel", "job_id": "j2"}]
    assert seen_sync == expected
    assert seen_async == expected


async def test_close_ends_subscribers_with_shutdown(bus: EventBus) -> None:
    baseline = bus.subscriber_count
    readers = [
        bus.subscribe(Subscriber(job_id="j1")),
        bus.subscribe(Subscriber(owner="alice")),
        bus.subscribe(Subscriber(everything=True)),
    ]
    assert bus.subscriber_count == baseline + 3
    waiting = asyncio.create_task(readers[0].wait())
    await asyncio.sleep(0)
    assert not waiting.done()

    await bus.close()
    await asyncio.wait_for(waiting, 1)
    assert [r.close_reason for r in readers] == ["shutdown"] * 3
    assert all(r.closed for r in readers)
    assert bus.subscriber_count == 0
