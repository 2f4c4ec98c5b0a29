"""Prometheus metrics, in a registry of the app's own (two apps in one process do not clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
            "Time from an event's creation to its write on a stream",
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
