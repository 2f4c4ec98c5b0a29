"""Prometheus metrics, in a registry of the app's own (two apps in one process do not clash).

Streams update theirs as they go; job metrics come from ``JobMetrics``, a job observer (see
``worker/observer.py``); the jobs-by-status gauge is read from the store at each scrape
(``set_job_counts``); and the registry carries prometheus_client's process, platform and
garbage-collector collectors. ``docs/operations.md`` lists every metric and its labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from jobstream.models import Event, EventType, Job, JobStatus
from jobstream.worker.observer import JobObserver

MAX_STEP_LABELS = 50
"""Distinct step names kept as labels per kind; more (a handler that puts variable text in its
step names) are counted under ``step="other"``, so the series stay bounded."""

JOB_SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
STEP_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
WAIT_SECONDS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.open_streams = Gauge(
            "jobstream_open_streams", "Open stream connections", ["transport"], registry=r
        )
        self.stream_duration = Histogram(
            "jobstream_stream_duration_seconds",
            "How long stream connections stay open",
            ["transport"],
            buckets=(1, 5, 15, 60, 300, 600, 1800, 3600),
            registry=r,
        )
        self.events_delivered = Counter(
            "jobstream_events_delivered",
            "Events written to stream clients",
            ["transport"],
            registry=r,
        )
        self.publish_to_send = Histogram(
            "jobstream_publish_to_send_seconds",
            "Time from an event's creation to its write on a stream (one batch in 16 per stream)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.resumes = Counter(
            "jobstream_stream_resumes",
            "Streams opened with a last event id",
            ["transport"],
            registry=r,
        )
        self.stream_refusals = Counter(
            "jobstream_stream_refusals",
            "Streams refused by a connection cap",
            ["transport"],
            registry=r,
        )
        self.overflow_disconnects = Counter(
            "jobstream_overflow_disconnects",
            "Streams ended because their reader fell too far behind",
            registry=r,
        )
        self.stalled_disconnects = Counter(
            "jobstream_stalled_disconnects",
            "Streams dropped because their reader stopped reading while a send was blocked",
            ["transport", "reason"],
            registry=r,
        )
        self.gc_pauses = Histogram(
            "jobstream_gc_pause_seconds",
            "Garbage collection pauses, by the oldest generation collected",
            ["generation"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.coalesced = Counter(
            "jobstream_coalesced_events",
            "Progress events replaced by a newer one for a reader that was behind",
            registry=r,
        )
        self.jobs_submitted = Counter(
            "jobstream_jobs_submitted", "Jobs submitted", ["kind"], registry=r
        )
        self.jobs_finished = Counter(
            "jobstream_jobs_finished",
            "Jobs that reached a terminal status",
            ["kind", "status"],
            registry=r,
        )
        self.errors = Counter(
            "jobstream_http_errors", "Error answers by status code", ["code"], registry=r
        )
        self.backlog_max = Gauge(
            "jobstream_stream_backlog_max",
            "The most events any open stream holds unsent (bounded by the backlog limits)",
            registry=r,
        )
        self.subscriptions = Gauge(
            "jobstream_bus_subscriptions", "Readers subscribed to the event bus", registry=r
        )
        self.jobs = Gauge(
            "jobstream_jobs",
            "Jobs in the store by kind and current status (read at each scrape)",
            ["kind", "status"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "jobstream_queue_wait_seconds",
            "Time from a job's submit to a worker starting it",
            ["kind"],
            buckets=WAIT_SECONDS,
            registry=r,
        )
        self.step_duration = Histogram(
            "jobstream_step_duration_seconds",
            "How long each step of a job took (steps that finished: the job went on or completed)",
            ["kind", "step"],
            buckets=STEP_SECONDS,
            registry=r,
        )
        self.job_duration = Histogram(
            "jobstream_job_duration_seconds",
            "How long a worker ran a job, by how it ended",
            ["kind", "status"],
            buckets=JOB_SECONDS,
            registry=r,
        )
        self.jobs_recovered = Counter(
            "jobstream_jobs_recovered",
            "Running jobs whose worker was gone, by outcome (requeued or failed)",
            ["kind", "outcome"],
            registry=r,
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._steps: dict[str, set[str]] = {}

    def step(self, kind: str, name: str) -> str:
        """The ``step`` label for ``name``: itself, or ``other`` past ``MAX_STEP_LABELS``."""
        seen = self._steps.setdefault(kind, set())
        if name in seen:
            return name
        if len(seen) >= MAX_STEP_LABELS:
            return "other"
        seen.add(name)
        return name

    def set_job_counts(
        self, counts: Mapping[tuple[str, JobStatus], int], kinds: Iterable[str]
    ) -> None:
        """Every (kind, status) pair of the registered kinds and the stored ones, 0 if none."""
        self.jobs.clear()
        for kind in {*kinds, *(kind for kind, _ in counts)}:
            for status in JobStatus:
                self.jobs.labels(kind=kind, status=status.value).set(counts.get((kind, status), 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class JobMetrics(JobObserver):
    """The job observer behind the job metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def queued(self, job: Job) -> None:
        self.metrics.jobs_submitted.labels(kind=job.kind).inc()

    def started(self, job: Job, waited_seconds: float) -> None:
        self.metrics.queue_wait.labels(kind=job.kind).observe(waited_seconds)

    def step_finished(self, job: Job, step_name: str, seconds: float) -> None:
        step = self.metrics.step(job.kind, step_name)
        self.metrics.step_duration.labels(kind=job.kind, step=step).observe(seconds)

    def finished(self, job: Job, event: Event, seconds: float) -> None:
        m, status = self.metrics, job.status.value
        m.jobs_finished.labels(kind=job.kind, status=status).inc()
        m.job_duration.labels(kind=job.kind, status=status).observe(seconds)

    def recovered(self, job: Job, event: Event) -> None:
        requeued = event.type is EventType.STATUS_CHANGE
        outcome = "requeued" if requeued else "failed"
        self.metrics.jobs_recovered.labels(kind=job.kind, outcome=outcome).inc()
        if not requeued:
            self.metrics.jobs_finished.labels(kind=job.kind, status=job.status.value).inc()
