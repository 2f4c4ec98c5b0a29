from __future__ import annotations

import itertools

import pytest

from jobstream.models import (
    TERMINAL_STATUSES,
    Event,
    EventType,
    IllegalTransition,
    Job,
    JobStatus,
    check_transition,
    monotonic_us,
    new_job_id,
)


def test_nothing_leaves_a_terminal_status() -> None:
    for old, new in itertools.product(TERMINAL_STATUSES, JobStatus):
        with pytest.raises(IllegalTransition, match="cannot move"):
            check_transition(old, new)


def test_legal_and_illegal_moves() -> None:
    check_transition(JobStatus.QUEUED, JobStatus.RUNNING)
    check_transition(JobStatus.RUNNING, JobStatus.COMPLETED)
    check_transition(JobStatus.RUNNING, JobStatus.QUEUED)  # recovery
    with pytest.raises(IllegalTransition):
        check_transition(JobStatus.QUEUED, JobStatus.COMPLETED)
    with pytest.raises(IllegalTransition):
        check_transition(JobStatus.QUEUED, JobStatus.QUEUED)


def test_job_ids_are_unguessable_and_url_safe() -> None:
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 22 and all(c.isalnum() or c in "-_" for c in i) for i in ids)


def test_cursor_is_strictly_increasing() -> None:
    values = [monotonic_us() for _ in range(10_000)]
    assert values == sorted(set(values))


def event(job: Job, type_: EventType, **data: object) -> Event:
    return Event(job_id=job.id, owner=job.owner, seq=job.seq + 1, type=type_, data=dict(data))


def test_apply_folds_events_into_a_snapshot() -> None:
    job = Job(id="j", kind="k", owner="o", params={})
    job = job.apply(event(job, EventType.STATUS_CHANGE, old_status=None, new_status="queued"))
    job = job.apply(event(job, EventType.STATUS_CHANGE, old_status="queued", new_status="running"))
    assert job.status is JobStatus.RUNNING and job.started_at is not None and job.attempts == 1
    job = job.apply(
        event(
            job,
            EventType.PROGRESS,
            progress=40.0,
            current_step=2,
            total_steps=5,
            step_name="b",
            state="transcribing",
            message="m",
            eta_seconds=3.0,
        )
    )
    assert (job.progress, job.current_step, job.state, job.eta_seconds) == (
        40.0,
        2,
        "transcribing",
        3.0,
    )
    assert job.to_public()["state"] == "transcribing"
    same = job.apply(Event(job_id="j", owner="o", seq=job.seq, type=EventType.LOG, data={}))
    assert same is job  # an event already folded in changes nothing
    done = job.apply(event(job, EventType.COMPLETED, result={"n": 1}))
    assert done.status is JobStatus.COMPLETED and done.progress == 100.0
    assert done.current_step == 5 and done.eta_seconds is None
    assert done.to_public()["state"] == "completed" and done.result == {"n": 1}
    failed = job.apply(event(job, EventType.FAILED, message="boom"))
    assert failed.error == "boom" and failed.finished_at is not None


def test_an_event_is_encoded_once() -> None:
    e = Event(job_id="j", owner="o", seq=1, type=EventType.PROGRESS, data={"progress": 1})
    assert e.encoded is e.encoded
    calls = []
    frame = e.frame("x", lambda ev: calls.append(1) or b"f")
    assert e.frame("x", lambda ev: calls.append(1) or b"g") is frame and calls == [1]
