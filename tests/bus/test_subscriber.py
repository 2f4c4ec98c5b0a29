"""One reader's bounded buffer: nothing lost while it keeps up, progress coalesced when it lags,
closed on overflow, and one future to wait on."""

from __future__ import annotations

import asyncio

import pytest

from jobstream.bus import MemoryBus, Subscriber, Wake
from jobstream.models import Event, EventType


def ev(job_id: str, seq: int, kind: EventType = EventType.PROGRESS) -> Event:
    data = {"progress": float(seq)} if kind is EventType.PROGRESS else {"message": f"m{seq}"}
    return Event(job_id=job_id, owner="alice", seq=seq, type=kind, data=data, ts_us=seq)


def keys(events: list[Event]) -> list[tuple[str, int]]:
    return [(e.job_id, e.seq) for e in events]


def test_subscribe_to_exactly_one_target() -> None:
    for kwargs in ({}, {"job_id": "j", "owner": "o"}, {"owner": "o", "everything": True}):
        with pytest.raises(ValueError):
            Subscriber(**kwargs)  # type: ignore[arg-type]


def test_below_soft_limit_nothing_is_dropped() -> None:
    sub = Subscriber(everything=True, soft_limit=10, hard_limit=100)
    pushed = [ev("j1", seq) for seq in range(1, 10)] + [ev("j2", 1)]
    for event in pushed:
        sub.push(event)
    assert sub.backlog == 10
    drained = sub.drain()
    assert drained == pushed  # identity: the same objects, in order
    assert all(a is b for a, b in zip(drained, pushed, strict=True))
    assert sub.coalesced == 0
    assert sub.drain() == [] and sub.backlog == 0


def test_past_soft_limit_progress_of_the_same_job_is_coalesced() -> None:
    sub = Subscriber(everything=True, soft_limit=3, hard_limit=100)
    p1 = ev("j1", 1)
    log = ev("j1", 2, EventType.LOG)
    other = ev("j2", 1)
    p3 = ev("j1", 3)
    for event in (p1, log, other):
        sub.push(event)
    assert sub.backlog == 3
    sub.push(p3)  # at the soft limit: replaces p1, the pending progress of j1
    assert sub.backlog == 3 and sub.coalesced == 1
    status = ev("j1", 4, EventType.STATUS_CHANGE)
    p5 = ev("j1", 5)
    p2b = ev("j2", 2)
    done = ev("j1", 6, EventType.COMPLETED)
    for event in (status, p5, p2b, done):
        sub.push(event)
    # p5 replaced p3, p2b replaced j2's progress; status, log and terminal all stay.
    assert sub.coalesced == 3
    drained = sub.drain()
    assert keys(drained) == [("j1", 2), ("j1", 4), ("j1", 5), ("j2", 2), ("j1", 6)]
    assert drained[2] is p5 and drained[3] is p2b
    assert sub.backlog == 0


def test_status_log_and_terminal_events_are_never_dropped() -> None:
    sub = Subscriber(everything=True, soft_limit=2, hard_limit=1000)
    kinds = [EventType.STATUS_CHANGE, EventType.LOG, EventType.FAILED, EventType.CANCELLED]
    pushed = [ev("j1", seq, kinds[seq % len(kinds)]) for seq in range(1, 201)]
    for event in pushed:
        sub.push(event)
    assert sub.coalesced == 0
    assert sub.drain() == pushed


async def test_past_hard_limit_it_closes_with_overflow() -> None:
    sub = Subscriber(job_id="j1", soft_limit=2, hard_limit=5)
    for seq in range(1, 6):
        sub.push(ev("j1", seq, EventType.LOG))
    assert not sub.closed
    sub.push(ev("j1", 6, EventType.LOG))
    assert sub.close_reason == "overflow"
    sub.push(ev("j1", 7, EventType.LOG))  # ignored once closed
    await asyncio.wait_for(sub.wait(), 1)  # a closed subscriber never blocks


async def test_memory_bus_counts_and_removes_overflowing_subscribers() -> None:
    bus = MemoryBus()
    baseline = bus.subscriber_count
    slow = bus.subscribe(Subscriber(job_id="j1", soft_limit=2, hard_limit=5))
    fast = bus.subscribe(Subscriber(job_id="j1", soft_limit=2, hard_limit=1000))
    await bus.publish([ev("j1", seq, EventType.LOG) for seq in range(1, 7)])
    assert slow.close_reason == "overflow"
    assert bus.overflow_disconnects == 1
    assert bus.subscriber_count == baseline + 1
    await bus.publish([ev("j1", 7, EventType.LOG)])
    assert bus.overflow_disconnects == 1  # counted once, and no longer delivered to
    assert [e.seq for e in fast.drain()] == [1, 2, 3, 4, 5, 6, 7]
    bus.unsubscribe(slow)  # already gone: idempotent
    assert bus.subscriber_count == baseline + 1
    await bus.close()
    assert fast.close_reason == "shutdown"


async def test_wait_wakes_on_push() -> None:
    sub = Subscriber(job_id="j1")
    waiter = asyncio.create_task(sub.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    sub.push(ev("j1", 1))
    await asyncio.wait_for(waiter, 1)
    # Something is pending: wait returns at once, without a new future.
    await asyncio.wait_for(sub.wait(), 0.1)
    assert [e.seq for e in sub.drain()] == [1]


async def test_wait_wakes_on_flags() -> None:
    sub = Subscriber(owner="alice")
    waiter = asyncio.create_task(sub.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    sub.wake(Wake.PING)
    await asyncio.wait_for(waiter, 1)
    sub.wake(Wake.TIMEOUT)
    assert sub.take_flags() == Wake.PING | Wake.TIMEOUT
    assert sub.take_flags() == Wake.NONE
    again = asyncio.create_task(sub.wait())
    await asyncio.sleep(0.01)
    assert not again.done()  # flags taken: nothing to wake for
    sub.close("client gone")
    await asyncio.wait_for(again, 1)


async def test_wait_wakes_on_close_and_drain_keeps_pending() -> None:
    sub = Subscriber(everything=True)
    waiter = asyncio.create_task(sub.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    sub.close("timeout")
    await asyncio.wait_for(waiter, 1)
    assert sub.close_reason == "timeout"
    sub.close("shutdown")  # the first reason stays
    assert sub.close_reason == "timeout"

    pending = Subscriber(everything=True)
    pending.push(ev("j1", 1))
    pending.close("shutdown")
    assert [e.seq for e in pending.drain()] == [1]


def test_backlog_stays_bounded_for_a_reader_that_never_drains() -> None:
    sub = Subscriber(job_id="j1", soft_limit=256, hard_limit=4096)
    worst = 0
    last = None
    for seq in range(1, 100_001):
        last = ev("j1", seq)
        sub.push(last)
        worst = max(worst, sub.backlog)
    assert worst <= sub.soft_limit + 1
    assert not sub.closed
    assert sub.coalesced == 100_000 - sub.backlog
    drained = sub.drain()
    assert len(drained) == sub.soft_limit
    # What was pending before the soft limit stays; the newest progress took the one lagging slot.
    assert [e.seq for e in drained] == [*range(1, sub.soft_limit), 100_000]
    assert drained[-1] is last


def test_backlog_stays_bounded_with_many_jobs_interleaved() -> None:
    sub = Subscriber(everything=True, soft_limit=64, hard_limit=4096)
    for seq in range(1, 20_001):
        sub.push(ev(f"j{seq % 10}", seq))
        assert sub.backlog <= sub.soft_limit + 1
    drained = sub.drain()
    latest = {e.job_id: e.seq for e in drained}
    assert latest == {f"j{n % 10}": n for n in range(19_991, 20_001)}
    assert [e.seq for e in drained] == sorted(e.seq for e in drained)


def test_pending_storage_stays_bounded_for_a_reader_that_never_drains() -> None:
    sub = Subscriber(job_id="j1", soft_limit=256, hard_limit=4096)
    for seq in range(1, 100_001):
        sub.push(ev("j1", seq))
    assert len(sub._pending) <= 2 * (sub.soft_limit + 1) + 64
    assert [e.seq for e in sub.drain()][-1] == 100_000
