"""The job store contract, one suite for every backend (memory, SQLite, PostgreSQL).

The memory store is the reference: whatever it answers, the SQL stores must answer too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jobstream.models import (
    Artifact,
    Event,
    EventType,
    Job,
    JobStatus,
    monotonic_us,
    new_job_id,
)
from jobstream.store.base import (
    Append,
    EventFactory,
    InsufficientCredits,
    JobStore,
    Rebase,
    StaleJob,
)
from jobstream.store.memory import created_us, encode_cursor
from jobstream.store.sql import SQLStore, jobs_table, normalize_url

T0 = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
HOUR_US = 3_600_000_000

StoreFactory = Callable[[], Awaitable[JobStore]]


# --- builders ---------------------------------------------------------------------------


def new_job(
    *,
    kind: str = "task",
    owner: str = "alice",
    job_id: str | None = None,
    created_at: datetime = T0,
    params: dict[str, Any] | None = None,
    cursor: int | None = None,
    cost: int = 0,
) -> tuple[Job, Event]:
    """A queued job and its first event, as the server makes them."""
    job_id = job_id or new_job_id()
    first = Event(
        job_id=job_id,
        owner=owner,
        seq=1,
        type=EventType.STATUS_CHANGE,
        data={"old_status": None, "new_status": JobStatus.QUEUED.value},
        **({} if cursor is None else {"ts_us": cursor}),
    )
    blank = Job(
        id=job_id,
        kind=kind,
        owner=owner,
        params={} if params is None else params,
        created_at=created_at,
        updated_at=created_at,
        cost=cost,
    )
    return blank.apply(first), first


async def add(store: JobStore, **kwargs: Any) -> Job:
    job, first = new_job(**kwargs)
    await store.create(job, first)
    return job


def to_status(new: JobStatus, cursor: int | None = None) -> EventFactory:
    def make(job: Job) -> Event:
        return Event(
            job_id=job.id,
            owner=job.owner,
            seq=job.seq + 1,
            type=EventType.STATUS_CHANGE,
            data={"old_status": job.status.value, "new_status": new.value},
            **({} if cursor is None else {"ts_us": cursor}),
        )

    return make


def ending(kind: EventType, **data: Any) -> EventFactory:
    def make(job: Job) -> Event:
        return Event(job_id=job.id, owner=job.owner, seq=job.seq + 1, type=kind, data=data)

    return make


def follow(job: Job, *specs: tuple[EventType, dict[str, Any]]) -> tuple[Job, list[Event]]:
    """The events a worker would write next, and the snapshot after them."""
    events = []
    for offset, (kind, data) in enumerate(specs, start=1):
        event = Event(job_id=job.id, owner=job.owner, seq=job.seq + offset, type=kind, data=data)
        events.append(event)
    for event in events:
        job = job.apply(event)
    return job, events


def progress(job: Job, count: int) -> tuple[Job, list[Event]]:
    return follow(
        job,
        *[
            (EventType.PROGRESS, {"progress": float(job.seq + i), "message": f"p{job.seq + i}"})
            for i in range(1, count + 1)
        ],
    )


async def claim(
    store: JobStore, kinds: Sequence[str] = ("task",), worker: str = "w1", lease: float = 30.0
) -> Job:
    claimed = await store.claim(kinds, worker, lease, to_status(JobStatus.RUNNING))
    assert claimed is not None
    return claimed[0]


def records(events: Sequence[Event] | None) -> list[dict[str, Any]]:
    assert events is not None
    return [event.to_record() for event in events]


def seqs(events: Sequence[Event] | None) -> list[int]:
    assert events is not None
    return [event.seq for event in events]


# --- create / get -----------------------------------------------------------------------


async def test_create_get_round_trips_every_field(store: JobStore) -> None:
    job_id = new_job_id()
    first = Event(
        job_id=job_id,
        owner="alice",
        seq=1,
        type=EventType.STATUS_CHANGE,
        data={"old_status": None, "new_status": "queued"},
    )
    job = Job(
        id=job_id,
        kind="video",
        owner="alice",
        params={"url": "https://x/é", "n": 3, "ratio": 0.25, "flags": [True, None], "o": {"k": []}},
        status=JobStatus.COMPLETED,
        state="rendering",
        progress=42.5,
        current_step=5,
        total_steps=12,
        step_name="AI Upscaling",
        message="ünïcode ✓ line",
        eta_seconds=12.25,
        result={"pages": 7, "nested": {"a": [1, 2.5, "x", None]}},
        artifact=Artifact(path="/data/a/out.pdf", media_type="application/pdf", filename="o.pdf"),
        error="boom",
        created_at=T0,
        started_at=T0 + timedelta(seconds=1, microseconds=1),
        updated_at=T0 + timedelta(seconds=2, microseconds=999_999),
        finished_at=T0 + timedelta(seconds=3, microseconds=7),
        seq=1,
        cancel_requested=True,
        attempts=3,
        cost=7,
    )
    await store.create(job, first)

    got = await store.get(job_id)
    assert got == job
    assert got is not None
    for ts in (got.created_at, got.started_at, got.updated_at, got.finished_at):
        assert ts is not None
        assert ts.utcoffset() == timedelta(0)
    assert got.created_at.microsecond == 123456
    assert records(await store.events_after(job_id, 0)) == [first.to_record()]


async def test_create_get_round_trips_empty_optionals(store: JobStore) -> None:
    job = await add(store, params={})
    got = await store.get(job.id)
    assert got == job
    assert got is not None
    assert got.result is None and got.artifact is None and got.started_at is None
    assert got.status is JobStatus.QUEUED and got.seq == 1


async def test_create_twice_is_refused(store: JobStore) -> None:
    job, first = new_job()
    await store.create(job, first)
    with pytest.raises(ValueError):
        await store.create(job, first)
    assert seqs(await store.events_after(job.id, 0)) == [1]


async def test_get_missing(store: JobStore) -> None:
    assert await store.get("nope") is None
    assert await store.events_after("nope", 0) == []


# --- list_jobs --------------------------------------------------------------------------


async def test_list_jobs_newest_first_with_filters(store: JobStore) -> None:
    a1 = await add(store, owner="alice", kind="video", created_at=T0)
    b1 = await add(store, owner="bob", kind="video", created_at=T0 + timedelta(seconds=1))
    a2 = await add(store, owner="alice", kind="pdf", created_at=T0 + timedelta(seconds=2))
    a3 = await add(store, owner="alice", kind="video", created_at=T0 + timedelta(seconds=3))
    await store.transition(a3.id, {JobStatus.QUEUED}, ending(EventType.CANCELLED, message="x"))

    page = await store.list_jobs(owner="alice")
    assert [j.id for j in page.items] == [a3.id, a2.id, a1.id]
    assert page.next_cursor is None

    everyone = await store.list_jobs(owner=None)
    assert [j.id for j in everyone.items] == [a3.id, a2.id, b1.id, a1.id]

    videos = await store.list_jobs(owner="alice", kind="video")
    assert [j.id for j in videos.items] == [a3.id, a1.id]

    queued = await store.list_jobs(owner="alice", status=JobStatus.QUEUED)
    assert [j.id for j in queued.items] == [a2.id, a1.id]

    cancelled = await store.list_jobs(owner=None, status=JobStatus.CANCELLED, kind="video")
    assert [j.id for j in cancelled.items] == [a3.id]
    assert cancelled.items[0].status is JobStatus.CANCELLED

    assert (await store.list_jobs(owner="carol")).items == []


async def test_count_by_status_counts_each_kind_and_status(store: JobStore) -> None:
    assert await store.count_by_status() == {}
    for owner in ("alice", "bob", "bob"):
        await add(store, owner=owner, kind="video")
    await add(store, kind="pdf")
    cancelled = await add(store, kind="pdf")
    await store.transition(
        cancelled.id, {JobStatus.QUEUED}, ending(EventType.CANCELLED, message="x")
    )
    await claim(store, ["video"])
    assert await store.count_by_status() == {
        ("video", JobStatus.QUEUED): 2,
        ("video", JobStatus.RUNNING): 1,
        ("pdf", JobStatus.QUEUED): 1,
        ("pdf", JobStatus.CANCELLED): 1,
    }


async def test_list_jobs_pages_with_cursor(store: JobStore) -> None:
    # Two jobs share a creation time: the id breaks the tie, byte-wise ("a" sorts after "B").
    ids = ["j0", "j1", "j2", "Bsame", "asame", "j5", "j6"]
    times = [0, 1, 2, 3, 3, 5, 6]
    for job_id, second in zip(ids, times, strict=True):
        await add(store, job_id=job_id, created_at=T0 + timedelta(seconds=second))
    expected = ["j6", "j5", "asame", "Bsame", "j2", "j1", "j0"]

    seen: list[str] = []
    cursor = None
    sizes = []
    while True:
        page = await store.list_jobs(owner="alice", limit=3, cursor=cursor)
        sizes.append(len(page.items))
        seen.extend(j.id for j in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert sizes == [3, 3, 1]

    # The cursor is the memory store's: (created_us, id) of the page's last job.
    first = await store.list_jobs(owner="alice", limit=3)
    last = first.items[-1]
    assert last.id == "asame"
    assert first.next_cursor == encode_cursor(created_us(last), last.id)
    # An exact page has no next cursor.
    whole = await store.list_jobs(owner="alice", limit=7)
    assert len(whole.items) == 7 and whole.next_cursor is None


@pytest.mark.parametrize("cursor", ["!!!not base64!!!", "bm8tY29sb24", "YWJjOmRlZg", "\u00e9"])
async def test_list_jobs_bad_cursor(store: JobStore, cursor: str) -> None:
    await add(store)
    with pytest.raises(ValueError):
        await store.list_jobs(owner=None, cursor=cursor)


# --- append -----------------------------------------------------------------------------


async def test_append_happy_path(store: JobStore) -> None:
    await add(store)
    job = await claim(store)
    job, events = follow(
        job,
        (EventType.PROGRESS, {"progress": 10.0, "current_step": 1, "total_steps": 4}),
        (EventType.LOG, {"level": "info", "message": "hello", "step": 1}),
        (EventType.PROGRESS, {"progress": 50.0, "current_step": 2, "step_name": "b"}),
    )
    await store.append(job, events)
    stored = await store.get(job.id)
    assert stored == job
    assert stored is not None
    assert stored.seq == 5 and stored.progress == 50.0 and stored.message == "hello"
    assert stored.status is JobStatus.RUNNING
    log = await store.events_after(job.id, 0)
    assert seqs(log) == [1, 2, 3, 4, 5]
    assert records(log)[2:] == records(events)

    done, final = follow(job, (EventType.COMPLETED, {"result": {"ok": True}}))
    await store.append(done, final)
    stored = await store.get(job.id)
    assert stored is not None
    assert stored.status is JobStatus.COMPLETED and stored.result == {"ok": True}
    assert stored.progress == 100.0 and stored.finished_at == final[0].ts


async def test_append_wrong_seq_is_stale(store: JobStore) -> None:
    await add(store)
    job = await claim(store)
    ahead = replace(job, seq=job.seq + 1)  # the worker believes one more event was stored
    later, events = progress(ahead, 2)
    with pytest.raises(StaleJob):
        await store.append(later, events)
    behind = replace(job, seq=job.seq - 1)
    later, events = progress(behind, 1)
    with pytest.raises(StaleJob):
        await store.append(later, events)
    assert await store.get(job.id) == job
    assert seqs(await store.events_after(job.id, 0)) == [1, 2]


async def test_append_to_non_running_job_is_stale(store: JobStore) -> None:
    queued = await add(store)
    later, events = progress(queued, 1)
    with pytest.raises(StaleJob):
        await store.append(later, events)
    assert await store.get(queued.id) == queued

    job = await claim(store)
    done, final = follow(job, (EventType.FAILED, {"message": "bad input"}))
    await store.append(done, final)
    more, events = progress(done, 1)
    with pytest.raises(StaleJob):
        await store.append(more, events)
    stored = await store.get(job.id)
    assert stored is not None and stored.status is JobStatus.FAILED
    assert stored.error == "bad input"
    assert seqs(await store.events_after(job.id, 0)) == [1, 2, 3]

    with pytest.raises(StaleJob):
        await store.append(*progress(replace(queued, id="missing"), 1))


async def test_cancel_flag_survives_append(store: JobStore) -> None:
    await add(store)
    job = await claim(store)
    cancelled = await store.request_cancel(job.id)
    assert cancelled is not None and cancelled.cancel_requested is True
    assert cancelled == replace(job, cancel_requested=True)

    later, events = progress(job, 2)  # the worker's copy has no cancel flag
    assert later.cancel_requested is False
    await store.append(later, events)
    stored = await store.get(job.id)
    assert stored is not None
    assert stored.cancel_requested is True
    assert stored.seq == later.seq


async def test_request_cancel_missing(store: JobStore) -> None:
    assert await store.request_cancel("missing") is None


# --- transition -------------------------------------------------------------------------


async def test_transition_allowed(store: JobStore) -> None:
    job = await add(store)
    done = await store.transition(
        job.id, {JobStatus.QUEUED}, ending(EventType.CANCELLED, message="by user")
    )
    assert done is not None
    after, event = done
    assert event.seq == 2 and event.type is EventType.CANCELLED
    assert after.status is JobStatus.CANCELLED and after.message == "by user"
    assert after.finished_at == event.ts
    assert await store.get(job.id) == after
    assert records(await store.events_after(job.id, 1)) == [event.to_record()]


async def test_transition_refused_or_missing(store: JobStore) -> None:
    job = await add(store)
    refused = await store.transition(job.id, {JobStatus.RUNNING}, to_status(JobStatus.QUEUED))
    assert refused is None
    assert await store.get(job.id) == job
    assert seqs(await store.events_after(job.id, 0)) == [1]
    assert await store.transition("missing", set(JobStatus), to_status(JobStatus.RUNNING)) is None


async def test_transition_rejects_event_with_wrong_seq(store: JobStore) -> None:
    job = await add(store)

    def skipping(current: Job) -> Event:
        return replace(to_status(JobStatus.CANCELLED)(current), seq=current.seq + 2)

    with pytest.raises(ValueError):
        await store.transition(job.id, {JobStatus.QUEUED}, skipping)
    assert await store.get(job.id) == job
    assert seqs(await store.events_after(job.id, 0)) == [1]


async def test_recovery_requeues_and_old_worker_goes_stale(store: JobStore) -> None:
    await add(store)
    job = await claim(store, worker="w1")
    requeued = await store.transition(job.id, {JobStatus.RUNNING}, to_status(JobStatus.QUEUED))
    assert requeued is not None and requeued[0].status is JobStatus.QUEUED
    assert (await store.renew_leases([job.id], "w1", 30)).lost == {job.id}
    assert await store.running_jobs() == []

    again = await claim(store, worker="w2")
    assert again.id == job.id and again.attempts == 2 and again.seq == 4
    with pytest.raises(StaleJob):
        await store.append(*progress(job, 1))
    assert (await store.renew_leases([job.id], "w2", 30)).lost == set()
    assert (await store.renew_leases([job.id], "w1", 30)).lost == {job.id}


async def test_a_lease_that_ended_is_not_renewed_when_the_caller_says_so(
    store: JobStore,
) -> None:
    """An external worker's late report: its lease ran out, so the renewal refuses it even
    before a watcher recovered the job (and renews a live one as before)."""
    await add(store)
    job = await claim(store, worker="w1", lease=0.05)
    await asyncio.sleep(0.1)
    late = monotonic_us()
    assert (await store.renew_leases([job.id], "w1", 30, unexpired_at=late)).lost == {job.id}
    assert (await store.get(job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]
    assert [j.id for j in await store.expired_leases(monotonic_us())] == [job.id]
    # Without it, the same late renewal revives the lease (what the embedded pool does).
    assert (await store.renew_leases([job.id], "w1", 30)).lost == set()
    live = monotonic_us()
    assert (await store.renew_leases([job.id], "w1", 30, unexpired_at=live)).lost == set()
    assert (await store.renew_leases([job.id], "w2", 30, unexpired_at=live)).lost == {job.id}


async def test_reserved_seqs_an_earlier_version_left_are_filled_never_reused(
    store: JobStore,
) -> None:
    """Earlier versions published up to ``seq_reserved`` before storing; a worker of theirs that
    died may have shown readers seqs the store never got. The next move fills them, then writes
    its own event after."""
    await add(store)
    job = await claim(store)
    assert job.seq == 2 and job.seq_reserved == 2  # nothing is published before it is stored
    # The worker stores a batch and raises its reservation to 10 past it ...
    after, batch = progress(job, 3)
    after = replace(after, seq_reserved=after.seq + 10)
    await store.append(after, batch)
    assert (await store.get(job.id)).seq_reserved == 15  # type: ignore[union-attr]
    # ... publishes 12, 13 (never stored), and dies. Recovery:
    moved = await store.transition(job.id, {JobStatus.RUNNING}, to_status(JobStatus.QUEUED))
    assert moved is not None
    requeued, event = moved
    assert event.seq == 16 and requeued.seq == 16 and requeued.seq_reserved == 16
    log = await store.events_after(job.id, 0)
    assert seqs(log) == list(range(1, 17))  # gap-free
    fillers = [e for e in log or [] if 6 <= e.seq <= 15]
    assert all(e.type is EventType.PROGRESS for e in fillers)
    assert all(e.data["progress"] == after.progress for e in fillers)  # the stored state
    # A reader that saw 12 and 13 resumes after 13 and gets the fillers it did not see, then
    # the re-queue: no seq it saw stands for another event.
    assert seqs(await store.events_after(job.id, 13)) == [14, 15, 16]
    # A clean end closes the window: nothing to fill on the next move.
    again = await claim(store)
    done, last = follow(again, (EventType.COMPLETED, {"result": 1}))
    await store.append(replace(done, seq_reserved=done.seq), last)
    assert (await store.get(job.id)).seq_reserved == done.seq  # type: ignore[union-attr]


# --- claim ------------------------------------------------------------------------------


async def test_claim_oldest_first(store: JobStore) -> None:
    middle = await add(store, created_at=T0 + timedelta(seconds=1))
    newest = await add(store, created_at=T0 + timedelta(seconds=2))
    oldest = await add(store, created_at=T0)

    result = await store.claim(["task"], "w1", 30, to_status(JobStatus.RUNNING))
    assert result is not None
    job, event = result
    assert job.id == oldest.id
    assert job.status is JobStatus.RUNNING and job.attempts == 1 and job.seq == 2
    assert job.started_at == event.ts
    assert event.type is EventType.STATUS_CHANGE and event.data["new_status"] == "running"
    assert await store.get(job.id) == job
    assert records(await store.events_after(job.id, 1)) == [event.to_record()]

    assert (await claim(store)).id == middle.id
    assert (await claim(store)).id == newest.id
    assert await store.claim(["task"], "w1", 30, to_status(JobStatus.RUNNING)) is None


async def test_claim_many_takes_the_oldest_up_to_the_limit(store: JobStore) -> None:
    newest = await add(store, created_at=T0 + timedelta(seconds=2))
    oldest = await add(store, created_at=T0)
    other = await add(store, kind="pdf", created_at=T0 - timedelta(seconds=1))
    middle = await add(store, created_at=T0 + timedelta(seconds=1))
    make = to_status(JobStatus.RUNNING)

    first = await store.claim_many(["task"], "w1", 30, make, 2)
    assert [job.id for job, _ in first] == [oldest.id, middle.id]
    for job, event in first:
        assert job.status is JobStatus.RUNNING and event.data["new_status"] == "running"
        assert await store.get(job.id) == job
    rest = await store.claim_many(["task", "pdf"], "w1", 30, make, 5)
    assert [job.id for job, _ in rest] == [other.id, newest.id]
    assert await store.claim_many(["task", "pdf"], "w1", 30, make, 5) == []
    assert await store.claim_many([], "w1", 30, make, 5) == []


async def test_claim_filters_kinds(store: JobStore) -> None:
    video = await add(store, kind="video", created_at=T0)
    pdf = await add(store, kind="pdf", created_at=T0 + timedelta(seconds=1))
    make = to_status(JobStatus.RUNNING)
    assert await store.claim([], "w1", 30, make) is None
    assert await store.claim(["task"], "w1", 30, make) is None
    assert (await claim(store, kinds=["pdf"])).id == pdf.id
    assert await store.claim(["pdf"], "w1", 30, make) is None
    assert (await claim(store, kinds=["pdf", "video"])).id == video.id
    assert await store.claim(["pdf", "video"], "w1", 30, make) is None


async def test_claim_skips_jobs_that_are_not_queued(store: JobStore) -> None:
    gone = await add(store, created_at=T0)
    await store.transition(gone.id, {JobStatus.QUEUED}, ending(EventType.CANCELLED))
    waiting = await add(store, created_at=T0 + timedelta(seconds=1))
    assert (await claim(store)).id == waiting.id


async def test_claim_job_takes_only_that_job_and_only_while_queued(store: JobStore) -> None:
    older = await add(store, created_at=T0)
    wanted = await add(store, created_at=T0 + timedelta(seconds=1))
    make = to_status(JobStatus.RUNNING)
    claimed = await store.claim_job(wanted.id, "w1", 30, make)
    assert claimed is not None
    job, event = claimed
    assert job.id == wanted.id and job.status is JobStatus.RUNNING and job.attempts == 1
    assert event.type is EventType.STATUS_CHANGE and event.seq == job.seq
    assert await store.claim_job(wanted.id, "w2", 30, make) is None  # running: left alone
    assert await store.claim_job("no-such-job", "w1", 30, make) is None
    assert (await store.get(older.id)).status is JobStatus.QUEUED
    assert (await claim(store)).id == older.id
    renewal = await store.renew_leases([wanted.id], "w1", 30)
    assert wanted.id not in renewal.lost  # the lease is w1's


async def _claim_everything(stores: Sequence[JobStore], loops_per_store: int) -> list[str]:
    async def loop(store: JobStore, worker: str) -> list[str]:
        taken = []
        while True:
            claimed = await store.claim(["task"], worker, 30, to_status(JobStatus.RUNNING))
            if claimed is None:
                return taken
            taken.append(claimed[0].id)
            await asyncio.sleep(0)

    results = await asyncio.gather(
        *(loop(s, f"w{i}.{j}") for i, s in enumerate(stores) for j in range(loops_per_store))
    )
    return [job_id for taken in results for job_id in taken]


async def _assert_claimed_once(store: JobStore, ids: list[str], claimed: list[str]) -> None:
    assert sorted(claimed) == sorted(ids)  # each job once: no double hand-out, none missed
    for job_id in ids:
        stored = await store.get(job_id)
        assert stored is not None
        assert stored.status is JobStatus.RUNNING and stored.attempts == 1 and stored.seq == 2
        assert seqs(await store.events_after(job_id, 0)) == [1, 2]


async def test_concurrent_claims_hand_each_job_out_once(store: JobStore) -> None:
    ids = [(await add(store, created_at=T0 + timedelta(milliseconds=i))).id for i in range(20)]
    claimed = await _claim_everything([store], loops_per_store=10)
    await _assert_claimed_once(store, ids, claimed)


async def test_concurrent_claims_across_engines(
    store: JobStore, store_factory: StoreFactory | None
) -> None:
    if store_factory is None:
        pytest.skip("the memory store lives in one process: there is no second engine")
    ids = [(await add(store, created_at=T0 + timedelta(milliseconds=i))).id for i in range(20)]
    stores = [store, *[await store_factory() for _ in range(3)]]
    claimed = await _claim_everything(stores, loops_per_store=4)
    await _assert_claimed_once(store, ids, claimed)


# --- credits ----------------------------------------------------------------------------


async def test_create_debits_the_cost_from_the_owner(store: JobStore) -> None:
    assert store.initial_credits == 1000
    assert await store.balance("alice") == await store.balance("nobody") == 1000
    paid = await add(store, owner="alice", cost=100)
    assert await store.balance("alice") == 900
    stored = await store.get(paid.id)
    assert stored is not None and stored.cost == 100
    await add(store, owner="alice", cost=0)  # free kinds touch no balance
    await add(store, owner="alice", cost=900)  # down to exactly zero is allowed
    assert await store.balance("alice") == 0
    assert await store.balance("bob") == 1000


async def test_too_few_credits_refuses_and_stores_nothing(store: JobStore) -> None:
    store.initial_credits = 150
    await add(store, owner="alice", cost=100)
    job, first = new_job(owner="alice", cost=100)
    with pytest.raises(InsufficientCredits) as refused:
        await store.create(job, first)
    assert (refused.value.cost, refused.value.balance, refused.value.owner) == (100, 50, "alice")
    assert str(refused.value) == (
        "not enough credits: a task job costs 100 credits and your balance is 50"
    )
    assert await store.get(job.id) is None
    assert await store.events_after(job.id, 0) == []
    assert len((await store.list_jobs(owner="alice")).items) == 1
    assert [e.job_id for e in await store.feed_events("alice", 0)] != [job.id]
    assert await store.balance("alice") == 50
    # A free job still goes in; the refused one's id was not taken.
    await add(store, owner="alice", cost=0)
    await store.create(*new_job(owner="alice", job_id=job.id, cost=50))
    assert await store.balance("alice") == 0


@pytest.mark.parametrize("end", [EventType.FAILED, EventType.CANCELLED])
async def test_append_of_failed_or_cancelled_refunds_once(store: JobStore, end: EventType) -> None:
    await add(store, cost=100)
    job = await claim(store)
    job, events = progress(job, 2)
    await store.append(job, events)
    assert await store.balance("alice") == 900
    done, final = follow(job, (end, {"message": "no"}))
    await store.append(done, final)
    assert await store.balance("alice") == 1000
    more, events = progress(done, 1)
    with pytest.raises(StaleJob):
        await store.append(more, events)
    assert await store.transition(job.id, {JobStatus.RUNNING}, ending(end)) is None
    assert await store.balance("alice") == 1000


async def test_append_refunds_the_stored_cost_not_the_writers(store: JobStore) -> None:
    await add(store, cost=100)
    job = await claim(store)
    done, final = follow(replace(job, cost=5000), (EventType.FAILED, {"message": "no"}))
    await store.append(done, final)
    assert await store.balance("alice") == 1000
    stored = await store.get(job.id)
    assert stored is not None and stored.cost == 100


async def test_completed_and_requeued_jobs_keep_the_debit(store: JobStore) -> None:
    await add(store, cost=100, created_at=T0)
    await add(store, cost=100, created_at=T0 + timedelta(seconds=1))
    first = await claim(store)
    done, final = follow(first, (EventType.COMPLETED, {"result": 1}))
    await store.append(done, final)
    second = await claim(store)
    assert await store.transition(second.id, {JobStatus.RUNNING}, to_status(JobStatus.QUEUED))
    assert await store.balance("alice") == 800


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (JobStatus.QUEUED, EventType.CANCELLED),  # cancel before a worker took it
        (JobStatus.QUEUED, EventType.FAILED),
        (JobStatus.RUNNING, EventType.FAILED),  # recovery of a job whose worker died
        (JobStatus.RUNNING, EventType.CANCELLED),
    ],
)
async def test_transition_to_failed_or_cancelled_refunds_once(
    store: JobStore, start: JobStatus, end: EventType
) -> None:
    job = await add(store, cost=100, created_at=T0)
    await add(store, owner="bob", cost=100, created_at=T0 + timedelta(seconds=1))
    if start is JobStatus.RUNNING:
        job = await claim(store)
        assert job.owner == "alice"
    moved = await store.transition(job.id, {start}, ending(end, message="x"))
    assert moved is not None and moved[0].status.terminal
    assert await store.balance("alice") == 1000
    again = await store.transition(job.id, {start, moved[0].status}, ending(end, message="x"))
    assert again is None or again[0].status is moved[0].status
    # Even a transition the status machine would refuse cannot refund a second time.
    assert await store.balance("alice") == 1000
    assert await store.balance("bob") == 900


async def _create_concurrently(
    stores: Sequence[JobStore], count: int
) -> list[BaseException | None]:
    async def one(i: int) -> BaseException | None:
        try:
            await stores[i % len(stores)].create(*new_job(owner="alice", cost=100))
        except InsufficientCredits as exc:
            return exc
        return None

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_concurrent_creates_never_overdraw(store: JobStore) -> None:
    store.initial_credits = 250
    outcomes = await _create_concurrently([store], 20)
    assert outcomes.count(None) == 2
    assert all(isinstance(o, InsufficientCredits) for o in outcomes if o is not None)
    assert await store.balance("alice") == 50
    assert len((await store.list_jobs(owner="alice")).items) == 2


async def test_concurrent_creates_across_engines_never_overdraw(
    store: JobStore, store_factory: StoreFactory | None
) -> None:
    if store_factory is None:
        pytest.skip("the memory store lives in one process: there is no second engine")
    stores = [store, *[await store_factory() for _ in range(3)]]
    for each in stores:
        each.initial_credits = 250
    outcomes = await _create_concurrently(stores, 20)
    assert outcomes.count(None) == 2
    for each in stores:
        assert await each.balance("alice") == 50
    assert len((await store.list_jobs(owner="alice")).items) == 2


# --- leases -----------------------------------------------------------------------------


async def test_leases_renew_and_expire(store: JobStore) -> None:
    await add(store)
    job = await claim(store, worker="w1", lease=30)
    now = monotonic_us()
    assert await store.expired_leases(now) == []
    expired = await store.expired_leases(now + 31_000_000)
    assert [j.id for j in expired] == [job.id]
    assert expired[0] == job

    assert (await store.renew_leases([job.id], "w1", 3600)).lost == set()
    assert await store.expired_leases(now + 31_000_000) == []
    assert [j.id for j in await store.expired_leases(now + 2 * HOUR_US)] == [job.id]

    # Another worker cannot renew (nor extend) a lease it does not hold.
    assert (await store.renew_leases([job.id, "unknown"], "w2", 7200)).lost == {job.id, "unknown"}
    assert [j.id for j in await store.expired_leases(now + 2 * HOUR_US)] == [job.id]
    assert (await store.renew_leases([], "w1", 30)).lost == set()

    done, final = follow(job, (EventType.COMPLETED, {"result": 1}))
    await store.append(done, final)
    assert (await store.renew_leases([job.id], "w1", 30)).lost == {job.id}
    assert await store.expired_leases(now + 10 * HOUR_US) == []


async def test_expired_leases_limit_and_running_jobs(store: JobStore) -> None:
    for i in range(3):
        await add(store, created_at=T0 + timedelta(seconds=i))
    queued = await add(store, created_at=T0 + timedelta(seconds=9))
    claimed = [await claim(store, lease=0.001) for _ in range(3)]
    later = monotonic_us() + HOUR_US
    assert len(await store.expired_leases(later, limit=2)) == 2
    assert {j.id for j in await store.expired_leases(later)} == {j.id for j in claimed}
    running = await store.running_jobs()
    assert {j.id for j in running} == {j.id for j in claimed}
    assert queued.id not in {j.id for j in running}
    assert len(await store.running_jobs(limit=1)) == 1


# --- the event log ----------------------------------------------------------------------


async def test_events_after_exact_sequence(store: JobStore) -> None:
    await add(store)
    job = await claim(store)
    job, first_batch = progress(job, 2)
    await store.append(job, first_batch)
    job, second_batch = progress(job, 4)
    await store.append(job, second_batch)
    events = first_batch + second_batch

    assert seqs(await store.events_after(job.id, 0)) == list(range(1, 9))
    assert seqs(await store.events_after(job.id, 2)) == [3, 4, 5, 6, 7, 8]
    assert records(await store.events_after(job.id, 2)) == records(events)
    assert seqs(await store.events_after(job.id, 5, limit=2)) == [6, 7]
    assert await store.events_after(job.id, 8) == []
    assert await store.events_after(job.id, 100) == []


async def _long_log(store: JobStore, kept: int, batches: int = 4) -> tuple[Job, Event]:
    """A running job with seq 1..20 (two status changes, then progress and log), trimmed to
    ``kept`` recent events, then completed (seq 21)."""
    store.max_events_per_job = kept
    await add(store)
    job = await claim(store)
    specs = [
        (EventType.LOG, {"level": "info", "message": f"l{i}"})
        if i % 3 == 0
        else (EventType.PROGRESS, {"progress": float(i)})
        for i in range(3, 21)
    ]
    size = -(-len(specs) // batches)
    for start in range(0, len(specs), size):
        job, events = follow(job, *specs[start : start + size])
        await store.append(job, events)
    done, final = follow(job, (EventType.COMPLETED, {"result": {"n": 20}}))
    await store.append(done, final)
    return done, final[0]


async def test_trimming_keeps_status_and_terminal_events(store: JobStore) -> None:
    job, terminal = await _long_log(store, kept=5)
    # seq 21 is the latest: events <= 16 go, except the two status changes.
    everything = await store.feed_events("alice", 0)
    assert seqs(everything) == [1, 2, 17, 18, 19, 20, 21]
    assert everything[-1].type is EventType.COMPLETED
    assert everything[-1].to_record() == terminal.to_record()
    assert [e.type for e in everything[:2]] == [EventType.STATUS_CHANGE] * 2

    assert seqs(await store.events_after(job.id, 16)) == [17, 18, 19, 20, 21]
    assert seqs(await store.events_after(job.id, 20)) == [21]
    # Asking for trimmed events answers None: the reader must take a snapshot.
    assert await store.events_after(job.id, 0) is None  # 1, 2, then a hole
    assert await store.events_after(job.id, 2) is None  # 3..16 are gone
    assert await store.events_after(job.id, 15) is None  # 16 is gone
    # ...even when the hole lies past the requested page.
    assert await store.events_after(job.id, 0, limit=2) is None
    stored = await store.get(job.id)
    assert stored == job
    assert stored is not None and stored.status is JobStatus.COMPLETED


async def test_no_trimming_below_the_bound(store: JobStore) -> None:
    job, _ = await _long_log(store, kept=21)
    assert seqs(await store.events_after(job.id, 0)) == list(range(1, 22))
    assert seqs(await store.events_after(job.id, 0, limit=3)) == [1, 2, 3]


async def test_trimming_in_one_batch_and_with_a_bound_of_one(store: JobStore) -> None:
    job, _ = await _long_log(store, kept=1, batches=1)
    assert seqs(await store.feed_events(None, 0)) == [1, 2, 21]
    assert seqs(await store.events_after(job.id, 20)) == [21]
    assert await store.events_after(job.id, 19) is None


async def test_feed_positions_follow_commit_order_without_gaps(store: JobStore) -> None:
    """``pos`` orders every stored event by commit, whatever its time says (an instance's clock
    may be behind another's): it is the all-jobs streams' cursor, the same on every instance."""
    base = monotonic_us() - HOUR_US
    assert await store.feed_position() == 0
    a1 = await add(store, owner="alice", cursor=base + 1000)
    b1 = await add(store, owner="bob", cursor=base + 500)  # an earlier clock, a later commit
    a2 = await add(store, owner="alice", cursor=base + 1500)
    run = await store.transition(
        b1.id, {JobStatus.QUEUED}, to_status(JobStatus.RUNNING, cursor=base + 1200)
    )
    assert run is not None and run[1].pos == 4
    assert await store.feed_position() == 4

    everyone = await store.feed_events(None, 0)
    assert [(e.job_id, e.seq, e.pos) for e in everyone] == [
        (a1.id, 1, 1),
        (b1.id, 1, 2),
        (a2.id, 1, 3),
        (b1.id, 2, 4),
    ]
    assert all(isinstance(e, Event) and e.type is EventType.STATUS_CHANGE for e in everyone)
    assert [e.ts_us for e in everyone] == [base + 1000, base + 500, base + 1500, base + 1200]

    alice = await store.feed_events("alice", 0)
    assert [(e.job_id, e.pos) for e in alice] == [(a1.id, 1), (a2.id, 3)]
    assert [e.job_id for e in await store.feed_events("alice", 1)] == [a2.id]
    assert [e.seq for e in await store.feed_events("bob", 2)] == [2]
    assert await store.feed_events("bob", 4) == []
    assert await store.feed_events("carol", 0) == []
    limited = await store.feed_events(None, 1, limit=2)
    assert [(e.job_id, e.seq) for e in limited] == [(b1.id, 1), (a2.id, 1)]

    # A worker's batch continues the same count.
    job = await claim(store)
    after, batch = progress(job, 3)
    await store.append(after, batch, worker="w1")
    assert [e.pos for e in batch] == [6, 7, 8] and await store.feed_position() == 8


async def test_changed_jobs_pages_the_jobs_with_events_after_a_position(store: JobStore) -> None:
    jobs = [await add(store, owner="alice") for _ in range(5)]
    other = await add(store, owner="bob")
    moved = await store.transition(jobs[1].id, {JobStatus.QUEUED}, to_status(JobStatus.CANCELLED))
    assert moved is not None
    changed = await store.changed_jobs("alice", 3)
    assert [j.id for j in changed] == sorted([jobs[3].id, jobs[4].id, jobs[1].id])
    assert next(j for j in changed if j.id == jobs[1].id).status is JobStatus.CANCELLED
    first = await store.changed_jobs(None, 0, limit=4)
    rest = await store.changed_jobs(None, 0, after_id=first[-1].id, limit=4)
    assert [j.id for j in first + rest] == sorted(j.id for j in [*jobs, other])
    assert await store.changed_jobs(None, await store.feed_position()) == []


async def test_positions_stay_gap_free_across_concurrent_writers(
    store: JobStore, store_factory: StoreFactory | None
) -> None:
    stores = [store] if store_factory is None else [store, await store_factory()]
    await asyncio.gather(*(add(stores[i % len(stores)]) for i in range(30)))
    positions = [e.pos for e in await store.feed_events(None, 0)]
    assert positions == list(range(1, 31))


async def test_append_many_stores_the_writers_batches_and_refuses_the_rest(
    store: JobStore,
) -> None:
    """One transaction for several jobs; a batch whose job is no longer its writer's (moved on,
    or leased to another worker) is refused and writes nothing, the others are stored."""
    for _ in range(3):
        await add(store)
    mine = await claim(store, worker="w1")
    taken = await claim(store, worker="w1")
    other = await claim(store, worker="w2")
    before = await store.feed_position()
    # ``taken`` was recovered and re-claimed by w2 while w1 still thought it ran it.
    requeued = await store.transition(taken.id, {JobStatus.RUNNING}, to_status(JobStatus.QUEUED))
    assert requeued is not None
    retaken = await claim(store, worker="w2")
    assert retaken.id == taken.id

    mine_after, mine_events = progress(mine, 2)
    stale_after, stale_events = progress(taken, 2)
    theirs_after, theirs_events = progress(other, 1)
    outcome = await store.append_many(
        [
            Append(mine_after, mine_events, "w1"),
            Append(stale_after, stale_events, "w1"),  # moved on: seq and lease
            Append(theirs_after, theirs_events, "w1"),  # the right seq, another's lease
        ]
    )
    assert outcome == [True, False, False]
    assert await store.get(mine.id) == mine_after
    assert (await store.get(taken.id)).seq == retaken.seq  # type: ignore[union-attr]
    assert (await store.get(other.id)) == other
    assert [e.pos for e in mine_events] == [before + 3, before + 4]
    assert await store.feed_position() == before + 4
    assert seqs(await store.events_after(other.id, 0)) == [1, 2]
    # The lease holder's own batch goes in.
    assert await store.append_many([Append(theirs_after, theirs_events, "w2")]) == [True]


async def test_ping(store: JobStore) -> None:
    await store.ping()


# --- SQL-specific -----------------------------------------------------------------------


def test_urls_are_pointed_at_async_drivers() -> None:
    assert normalize_url("sqlite:///x/y.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("sqlite+aiosqlite:///x/y.db").database == "x/y.db"
    assert normalize_url("postgresql://u@h:5432/db").drivername == "postgresql+asyncpg"
    pg = normalize_url("postgres://u:p@h:5433/db")
    assert (pg.drivername, pg.host, pg.port, pg.database) == ("postgresql+asyncpg", "h", 5433, "db")
    assert normalize_url("postgresql+asyncpg://h/db").drivername == "postgresql+asyncpg"
    with pytest.raises(ValueError):
        SQLStore("mysql://h/db")


async def test_sqlite_file_is_durable_and_configured(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "jobs.db"
    store = SQLStore(f"sqlite:///{path}", max_events_per_job=10)
    await store.start()
    await store.start()  # idempotent
    try:
        assert path.exists()
        job = await add(store)
        async with store.engine.connect() as conn:
            pragmas = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            ]
        assert pragmas == ["wal", 1, 5000, 1]
    finally:
        await store.close()

    reopened = SQLStore(f"sqlite+aiosqlite:///{path}")
    await reopened.start()
    try:
        assert await reopened.get(job.id) == job
        assert seqs(await reopened.events_after(job.id, 0)) == [1]
    finally:
        await reopened.close()


async def test_sqlite_in_memory(tmp_path: Path) -> None:
    store = SQLStore("sqlite+aiosqlite:///:memory:")
    await store.start()
    try:
        await asyncio.gather(*(add(store) for _ in range(5)))
        assert len((await store.list_jobs(owner="alice")).items) == 5
        claimed = await _claim_everything([store], loops_per_store=3)
        assert len(set(claimed)) == 5
    finally:
        await store.close()


async def test_sql_store_adds_the_cost_column_to_an_older_database(
    backend: str, store: JobStore
) -> None:
    if backend == "memory://":
        pytest.skip("SQL only")
    job = await add(store, cost=0)
    assert isinstance(store, SQLStore)
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE jobstream_jobs DROP COLUMN cost"))
    await store.close()
    reopened = SQLStore(backend)
    await reopened.start()
    try:
        stored = await reopened.get(job.id)
        assert stored == job and stored is not None and stored.cost == 0
        await add(reopened, cost=30)
        assert await reopened.balance("alice") == 970
    finally:
        await reopened.close()


async def test_sql_store_numbers_the_events_of_an_older_database_in_time_order(
    backend: str, store: JobStore
) -> None:
    """A database from before positions: its events get them in the order of their time, and
    new events continue after them."""
    if backend == "memory://":
        pytest.skip("SQL only")
    base = monotonic_us() - HOUR_US
    late = await add(store, cursor=base + 2000)
    early = await add(store, cursor=base + 1000)
    assert isinstance(store, SQLStore)
    async with store.engine.begin() as conn:
        for index in ("ix_jobstream_events_pos", "ix_jobstream_events_owner_pos"):
            await conn.execute(sa.text(f"DROP INDEX {index}"))
        await conn.execute(sa.text("ALTER TABLE jobstream_events DROP COLUMN pos"))
        await conn.execute(sa.text("DROP TABLE jobstream_positions"))
    await store.close()
    reopened = SQLStore(backend)
    await reopened.start()
    try:
        numbered = await reopened.feed_events(None, 0)
        assert [(e.job_id, e.pos) for e in numbered] == [(early.id, 1), (late.id, 2)]
        newer = await add(reopened)
        assert [e.pos for e in await reopened.feed_events(None, 2)] == [3]
        assert (await reopened.feed_events(None, 2))[0].job_id == newer.id
    finally:
        await reopened.close()


@pytest.mark.postgres
async def test_postgres_claim_skips_locked_rows(postgres_url: str) -> None:
    """A claimer never waits on a row another transaction holds: it takes the next one."""
    first = SQLStore(postgres_url)
    second = SQLStore(postgres_url)
    await first.start()
    await second.start()
    try:
        oldest = await add(first, created_at=T0)
        nxt = await add(first, created_at=T0 + timedelta(seconds=1))
        async with first.engine.begin() as conn:
            await conn.execute(
                sa.select(jobs_table.c.id).where(jobs_table.c.id == oldest.id).with_for_update()
            )
            claimed = await asyncio.wait_for(
                second.claim(["task"], "w2", 30, to_status(JobStatus.RUNNING)), timeout=5
            )
            assert claimed is not None and claimed[0].id == nxt.id
            # Nothing else is free: the locked row is skipped, not waited for.
            assert (
                await asyncio.wait_for(
                    second.claim(["task"], "w2", 30, to_status(JobStatus.RUNNING)), timeout=5
                )
                is None
            )
        after = await second.claim(["task"], "w2", 30, to_status(JobStatus.RUNNING))
        assert after is not None and after[0].id == oldest.id
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("result", [1, 2.5, "text", "123", True, None, [1, "a"]])
async def test_scalar_results_round_trip(store: JobStore, result: Any) -> None:
    """Regression: SQLite gives JSON columns NUMERIC affinity, so a stored ``1`` came back as an
    int, not JSON text, and reading the job failed."""
    await add(store)
    job = await claim(store)
    done, last = follow(job, (EventType.COMPLETED, {"result": result}))
    await store.append(done, last)
    stored = await store.get(job.id)
    assert stored is not None and stored.result == result


# --- stalled workers ----------------------------------------------------------------------


def stall_events(job: Job) -> list[Event]:
    return [
        Event(
            job_id=job.id,
            owner=job.owner,
            seq=job.seq + 1,
            type=EventType.PROGRESS,
            data={"progress": job.progress, "state": "stalled", "message": job.message},
        ),
        Event(
            job_id=job.id,
            owner=job.owner,
            seq=job.seq + 2,
            type=EventType.LOG,
            data={"level": "warning", "message": "no word from its worker", "step": None},
        ),
    ]


async def test_a_stall_is_announced_once_when_half_the_lease_went_unrenewed(
    store: JobStore, store_factory: StoreFactory | None
) -> None:
    await add(store)
    job = await claim(store, worker="w1", lease=30)
    now = monotonic_us()
    assert await store.announce_stalls(now, 30, stall_events) == []  # renewed a moment ago
    later = now + 16_000_000  # more than half of 30 s without a renewal
    others = [store] if store_factory is None else [store, await store_factory()]
    results = await asyncio.gather(*(s.announce_stalls(later, 30, stall_events) for s in others))
    announced = [entry for result in results for entry in result]
    assert len(announced) == 1  # exactly once, whoever else looked at the same moment
    after, events = announced[0]
    assert [e.seq for e in events] == [job.seq + 1, job.seq + 2]
    assert all(e.pos is not None for e in events)
    assert after.state == "stalled" and after.status is JobStatus.RUNNING
    assert await store.get(job.id) == after
    assert await store.announce_stalls(later + 1, 30, stall_events) == []  # already announced
    # The worker was slow, not dead: its lease is still its own. Its batch, numbered before the
    # notice, is to be renumbered, and nothing of it is stored.
    mine_after, mine = progress(job, 2)
    assert await store.append_many([Append(mine_after, mine, "w1")]) == [Rebase(after.seq)]
    assert seqs(await store.events_after(job.id, 0)) == list(range(1, after.seq + 1))
    # Another worker's batch at the right seq is refused outright.
    theirs_after, theirs = progress(after, 1)
    assert await store.append_many([Append(theirs_after, theirs, "w2")]) == [False]
    # The renewal answers the notice, once; the lease holder's renumbered batch goes in.
    renewal = await store.renew_leases([job.id], "w1", 30)
    assert renewal.lost == set() and renewal.unstalled == {job.id}
    assert (await store.renew_leases([job.id], "w1", 30)).unstalled == set()
    back_after, back = progress(after, 1)
    assert await store.append_many([Append(back_after, back, "w1")]) == [True]
    # A new stall of the same run can be announced again once the lease goes quiet again.
    again = monotonic_us() + 16_000_000
    assert len(await store.announce_stalls(again, 30, stall_events)) == 1


async def test_a_move_of_status_clears_a_stall(store: JobStore) -> None:
    await add(store)
    job = await claim(store, worker="w1", lease=30)
    later = monotonic_us() + 16_000_000
    assert len(await store.announce_stalls(later, 30, stall_events)) == 1
    moved = await store.transition(job.id, {JobStatus.RUNNING}, to_status(JobStatus.QUEUED))
    assert moved is not None
    rerun = await claim(store, worker="w2", lease=30)
    assert rerun.id == job.id
    assert await store.announce_stalls(monotonic_us(), 30, stall_events) == []
    assert len(await store.announce_stalls(monotonic_us() + 16_000_000, 30, stall_events)) == 1


@pytest.mark.postgres
async def test_postgres_schema_is_made_once_when_many_processes_start_at_once(
    postgres_url: str,
) -> None:
    """A new cluster: every instance and worker starts on the empty database at the same time
    (concurrent CREATE TABLEs collide in PostgreSQL's catalogue unless one goes at a time)."""
    stores = [SQLStore(postgres_url) for _ in range(6)]
    try:
        await asyncio.gather(*(store.start() for store in stores))
        job = await add(stores[0])
        assert await stores[-1].get(job.id) == job
    finally:
        for store in stores:
            await store.close()


@pytest.mark.postgres
async def test_postgres_batch_is_one_transaction_a_failed_insert_moves_nothing(
    postgres_url: str,
) -> None:
    """The job row and its events commit together or not at all: here the events' insert
    fails (a row already holds the seq), and the job row must not have moved on."""
    store = SQLStore(postgres_url)
    await store.start()
    try:
        job = await claim(store, worker="w1") if await add(store) else None
        assert job is not None
        after, events = progress(job, 3)
        async with store.engine.begin() as conn:  # a stray row where the batch's last event goes
            await conn.execute(
                sa.text(
                    "INSERT INTO jobstream_events (job_id, owner, seq, type, data, cursor, pos) "
                    "VALUES (:j, :o, :s, 'log', '{}', 0, NULL)"
                ),
                {"j": job.id, "o": job.owner, "s": events[-1].seq},
            )
        with pytest.raises(Exception, match="duplicate key"):
            await store.append_many([Append(after, events, "w1")])
        stored = await store.get(job.id)
        assert stored is not None and stored.seq == job.seq  # not moved on without its events
    finally:
        await store.close()


# --- step history (the ETA's memory of earlier runs) ------------------------------------


async def test_step_history_is_kept_per_kind_and_bucket_newest_first(store: JobStore) -> None:
    assert await store.step_history("pdf", "pages:16") == []
    await store.record_steps("pdf", "pages:16", [1.5, 2.0, 0.25])
    await store.record_steps("pdf", "pages:16", [1.0, 3.0, 0.5])
    await store.record_steps("pdf", "pages:512", [9.0])
    await store.record_steps("video", "pages:16", [4.0])

    assert await store.step_history("pdf", "pages:16") == [[1.0, 3.0, 0.5], [1.5, 2.0, 0.25]]
    assert await store.step_history("pdf", "pages:16", limit=1) == [[1.0, 3.0, 0.5]]
    assert await store.step_history("pdf", "pages:512") == [[9.0]]
    assert await store.step_history("video", "pages:16") == [[4.0]]
    assert await store.step_history("video", "") == []


async def test_step_history_is_bounded_to_the_newest_runs(store: JobStore) -> None:
    store.max_step_runs = 3
    for run in range(7):
        await store.record_steps("task", "", [float(run), 1.0])
    await store.record_steps("other", "", [42.0])

    assert await store.step_history("task", "", limit=10) == [
        [6.0, 1.0],
        [5.0, 1.0],
        [4.0, 1.0],
    ]
    assert await store.step_history("other", "") == [[42.0]]
    if isinstance(store, SQLStore):  # the rows are gone, not only hidden
        from jobstream.store.sql import step_runs_table

        async with store.engine.connect() as conn:
            count = await conn.execute(
                sa.select(sa.func.count()).where(step_runs_table.c.kind == "task")
            )
            assert count.scalar_one() == 3
