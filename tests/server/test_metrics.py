"""``/metrics`` of a real server after real jobs: jobs by status (from the store), step
durations, queue wait, job durations, and the process and Python collectors."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from jobstream.jobs.video import video_steps
from serverproc import ServerProcess, bearer, finished_job

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: ServerProcess) -> Samples:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_show_jobs_by_status_step_durations_queue_wait_and_the_process(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"JOBSTREAM_DEMO_SPEED": "8"}).start()
    with httpx.Client(base_url=server.url, headers=bearer("metrics"), timeout=30) as client:
        video = client.post("/api/v1/jobs", json={"kind": "video", "params": {"prompt": "x"}})
        failing = client.post("/api/v1/jobs", json={"kind": "pdf", "params": {"fail_at_step": 1}})
        # A submit through a design note's profile is a video job like the others.
        profiled = client.post("/generate", json={"prompt": "a fox"})
        forever = client.post("/api/v1/jobs", json={"kind": "forever", "params": {}}).json()
        assert finished_job(client, video.json()["id"])["status"] == "completed"
        assert finished_job(client, failing.json()["id"])["status"] == "failed"
        assert finished_job(client, profiled.json()["job_id"])["status"] == "completed"
        assert client.get(f"/api/v1/jobs/{forever['id']}?wait=5&after_seq=2").json()["status"] == (
            "running"
        )
        samples = scrape(server)
        client.post(f"/api/v1/jobs/{forever['id']}/cancel")
        assert finished_job(client, forever["id"])["status"] == "cancelled"
        after_cancel = scrape(server)

    # Jobs by kind and current status, read from the store: every status of every kind.
    jobs = {
        (dict(labels)["kind"], dict(labels)["status"]): v
        for (name, labels), v in samples.items()
        if name == "jobstream_jobs"
    }
    assert jobs[("video", "completed")] == 2 and jobs[("video", "queued")] == 0
    assert jobs[("pdf", "failed")] == 1 and jobs[("forever", "running")] == 1
    assert all(jobs[("task", status)] == 0 for status in ("queued", "running", "completed"))
    assert value(after_cancel, "jobstream_jobs", kind="forever", status="running") == 0
    assert value(after_cancel, "jobstream_jobs", kind="forever", status="cancelled") == 1

    # Each of the video's 8 steps, once per video; the pdf failed in its first step, which
    # did not finish.
    for step in (s.name for s in video_steps()):
        count = value(samples, "jobstream_step_duration_seconds_count", kind="video", step=step)
        total = value(samples, "jobstream_step_duration_seconds_sum", kind="video", step=step)
        assert count == 2, step
        assert total is not None and 0.05 < total < 10, (step, total)
    assert not any(
        name == "jobstream_step_duration_seconds_count" and dict(labels)["kind"] == "pdf"
        for name, labels in samples
    )

    assert value(samples, "jobstream_queue_wait_seconds_count", kind="video") == 2
    wait = value(samples, "jobstream_queue_wait_seconds_sum", kind="video")
    assert wait is not None and 0 <= wait < 5
    assert value(samples, "jobstream_job_duration_seconds_count", kind="video", status="completed")
    run = value(samples, "jobstream_job_duration_seconds_sum", kind="video", status="completed")
    assert run is not None and 1 < run < 30  # two videos of ~2.5 s
    assert value(samples, "jobstream_jobs_submitted_total", kind="video") == 2  # each once
    assert value(samples, "jobstream_jobs_finished_total", kind="pdf", status="failed") == 1
    assert value(
        after_cancel, "jobstream_job_duration_seconds_count", kind="forever", status="cancelled"
    )

    # The standard collectors, on the app's own registry.
    rss = value(samples, "process_resident_memory_bytes")
    assert rss is not None and 20e6 < rss < 4e9
    start = value(samples, "process_start_time_seconds")
    assert start is not None and time.time() - 120 < start <= time.time()
    cpu = value(samples, "process_cpu_seconds_total")
    assert cpu is not None and cpu > 0
    assert (value(samples, "process_open_fds") or 0) > 0
    assert any(name == "python_info" for name, _ in samples)
    assert value(samples, "python_gc_collections_total", generation="0") is not None
