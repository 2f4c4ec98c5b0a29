"""What a network bus adds to the contract, against a real Redis: fan-out between instances,
one ordered gap-free delivery per instance (early events wait, missing ones come from the store),
control messages between instances, and a lost connection that loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from jobstream.bus import Subscriber
from jobstream.bus.redis import RedisBus
from jobstream.models import Event, EventType, Job, JobStatus, new_job_id
from jobstream.store import JobStore, create_store
from redisdb import REDIS_URL, reachable, redis_prefix

pytestmark = pytest.mark.redis


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with redis_prefix() as value:
        yield value


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[JobStore]:
    instance = create_store(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await instance.start()
    yield instance
    await instance.close()


async def started(bus: RedisBus, store: JobStore | None = None) -> RedisBus:
    if store is not None:
        bus.attach_store(store)
    await bus.start()
    return bus


async def stored_job(store: JobStore, owner: str = "alice") -> Event:
    """A new queued job in the store; its first event (with its position)."""
    job_id = new_job_id()
    first = Event(
        job_id=job_id,
        owner=owner,
        seq=1,
        type=EventType.STATUS_CHANGE,
        data={"old_status": JobStatus.QUEUED.value, "new_status": JobStatus.QUEUED.value},
    )
    job = Job(id=job_id, kind="task", owner=owner, params={}, created_at=datetime.now(UTC))
    await store.create(job.apply(first), first)
    [event] = await store.events_after(job_id, 0) or []
    return event


async def take(subscriber: Subscriber, count: int, within: float = 5.0) -> list[Event]:
    got: list[Event] = []

    async def fill() -> None:
        while len(got) < count:
            await subscriber.wait()
            got.extend(subscriber.drain())

    await asyncio.wait_for(fill(), within)
    return got


async def wait_for(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


async def test_an_event_published_on_one_instance_reaches_subscribers_on_another(
    prefix: str,
) -> None:
    a = await started(RedisBus(REDIS_URL, prefix))
    b = await started(RedisBus(REDIS_URL, prefix))
    try:
        on_b = b.subscribe(Subscriber(owner="alice"))
        on_a = a.subscribe(Subscriber(owner="alice"))
        events = [
            Event(job_id="j1", owner="alice", seq=n, type=EventType.PROGRESS, data={"n": n})
            for n in range(1, 201)
        ]
        for start in range(0, 200, 50):
            await a.publish(events[start : start + 50])
        got = await take(on_b, 200)
        assert [e.to_record() for e in got] == [e.to_record() for e in events]
        assert [e.seq for e in await take(on_a, 200)] == list(range(1, 201))  # once, locally
        await asyncio.sleep(0.2)
        assert on_a.drain() == [] and on_b.drain() == []  # nothing twice
        shared = [e for e in got if e.seq == 1]
        assert len(shared) == 1
    finally:
        await a.close()
        await b.close()


async def test_control_messages_reach_every_instance_once(prefix: str) -> None:
    a = await started(RedisBus(REDIS_URL, prefix))
    b = await started(RedisBus(REDIS_URL, prefix))
    seen: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    arrived = asyncio.Event()

    def on_b(message: dict[str, Any]) -> None:
        seen["b"].append(message)
        arrived.set()

    a.on_control(seen["a"].append)
    b.on_control(on_b)
    try:
        await a.publish_control({"type": "cancel", "job_id": "j1"})
        await asyncio.wait_for(arrived.wait(), 5)
        await asyncio.sleep(0.2)
        assert seen == {"a": [{"type": "cancel", "job_id": "j1"}]} | {
            "b": [{"type": "cancel", "job_id": "j1"}]
        }
    finally:
        await a.close()
        await b.close()


async def test_events_arrive_in_position_order_and_missing_ones_come_from_the_store(
    prefix: str, store: JobStore
) -> None:
    reader = await started(RedisBus(REDIS_URL, prefix), store)
    writer = await started(RedisBus(REDIS_URL, prefix))
    try:
        watcher = reader.subscribe(Subscriber(everything=True))
        first, second, third = [await stored_job(store) for _ in range(3)]
        assert [first.pos, second.pos, third.pos] == [1, 2, 3]
        await writer.publish([third])  # early: waits for 1 and 2
        await writer.publish([first])  # 2 is never published: the store has it
        got = await take(watcher, 3)
        assert [(e.job_id, e.pos) for e in got] == [
            (first.job_id, 1),
            (second.job_id, 2),
            (third.job_id, 3),
        ]
        assert reader.store_fills >= 1
        await writer.publish([second])  # late: delivered already, not twice
        await asyncio.sleep(0.2)
        assert watcher.drain() == []
    finally:
        await reader.close()
        await writer.close()


async def test_a_killed_subscription_reconnects_and_catches_up_from_the_store(
    prefix: str, store: JobStore
) -> None:
    reader = await started(RedisBus(REDIS_URL, prefix), store)
    writer = await started(RedisBus(REDIS_URL, prefix))
    admin: aioredis.Redis = await reachable()
    try:
        watcher = reader.subscribe(Subscriber(everything=True))
        before = await stored_job(store)
        await writer.publish([before])
        assert [e.pos for e in await take(watcher, 1)] == [before.pos]
        # Cut both subscriptions (found by their connection names; nobody else's).
        ours = {reader.listener_name, writer.listener_name}
        clients = [c for c in await admin.client_list() if c.get("name") in ours]
        killed = 0
        for client in clients:
            killed += await admin.client_kill_filter(_id=client["id"])
        assert killed == 2
        missed = [await stored_job(store) for _ in range(20)]
        await writer.publish(missed)  # may go to nobody: the subscriptions are down
        got = await take(watcher, 20, within=10)
        assert [e.pos for e in got] == [e.pos for e in missed]
        await wait_for(lambda: reader.connected)
        after = await stored_job(store)
        await writer.publish([after])
        assert [e.pos for e in await take(watcher, 1)] == [after.pos]
        await asyncio.sleep(0.2)
        assert watcher.drain() == []
        assert reader.reconnects >= 1
    finally:
        await admin.aclose()
        await reader.close()
        await writer.close()
