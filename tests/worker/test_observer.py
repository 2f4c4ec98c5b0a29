"""``Observers``: one observer that raises does not keep the others (or the job) from going on."""

from __future__ import annotations

import logging

import pytest

from jobstream.models import Job
from jobstream.worker.observer import JobObserver, Observers


class Broken(JobObserver):
    def queued(self, job: Job) -> None:
        raise RuntimeError("observer bug")


class Recorder(JobObserver):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def queued(self, job: Job) -> None:
        self.seen.append(job.id)


def test_an_observer_that_raises_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    observers = Observers([Broken(), recorder])
    with caplog.at_level(logging.ERROR, logger="jobstream.worker.observer"):
        observers.queued(Job(id="j1", kind="k", owner="o", params={}))
        observers.progressed(Job(id="j1", kind="k", owner="o", params={}))  # nobody's hook
    assert recorder.seen == ["j1"]
    assert [r.getMessage() for r in caplog.records] == ["job observer hook Broken.queued failed"]
