"""The SQLite store's inline group commit (``store/inline.py``): a job's create, claim and step
records of one loop turn in one transaction, each in a savepoint; the SQLAlchemy path when the
database is busy."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_store_contract import new_job as contract_new_job

from jobstream.models import Event, EventType, Job, JobStatus, utcnow
from jobstream.store.base import InsufficientCredits
from jobstream.store.sql import SQLStore


def new_job(*, job_id: str | None = None, owner: str = "alice", cost: int = 0) -> tuple[Job, Event]:
    return contract_new_job(job_id=job_id, owner=owner, cost=cost, created_at=utcnow())


def running(job: Job) -> Event:
    return Event(
        job_id=job.id,
        owner=job.owner,
        seq=job.seq + 1,
        type=EventType.STATUS_CHANGE,
        data={"old_status": job.status.value, "new_status": JobStatus.RUNNING.value},
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    store = SQLStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def test_one_failing_create_of_a_turn_leaves_the_others_stored(store: SQLStore) -> None:
    store.initial_credits = 5
    first, first_event = new_job()
    copy, copy_event = new_job(job_id=first.id)
    poor, poor_event = new_job(owner="bob", cost=10)
    other, other_event = new_job()
    outcomes = await asyncio.gather(
        store.create(first, first_event),
        store.create(copy, copy_event),
        store.create(poor, poor_event),
        store.create(other, other_event),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], ValueError)
    assert isinstance(outcomes[2], InsufficientCredits)
    assert await store.get(first.id) == first
    assert await store.get(other.id) == other
    assert await store.get(poor.id) is None
    assert await store.balance("bob") == 5
    positions = [first_event.pos, other_event.pos]
    assert positions == [1, 2]
    assert [e.pos for e in await store.feed_events(None, 0)] == [1, 2]


async def test_a_busy_database_takes_the_waiting_path(store: SQLStore, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    job, event = new_job()
    create = asyncio.ensure_future(store.create(job, event))
    await asyncio.sleep(0.2)
    assert not create.done()  # waiting for the lock (busy_timeout), not failed
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(create, 10)
    assert await store.get(job.id) == job
    claimed = await store.claim_many(["task"], "w1", 30, running, 4)
    assert [j.id for j, _ in claimed] == [job.id]
