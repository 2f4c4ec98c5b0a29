"""What a real server logs: every record in the chosen format (one JSON object per line), one
access line per request, the job lifecycle lines, and never a token, ticket or link signature.

The redaction used to look for ``token=`` as written, but Starlette decodes the query before it
authenticates: ``?%74oken=<jwt>`` signed the request in and put the JWT in the access log, and
``?TOKEN=`` / ``?Token=`` went to the log as they came.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect

from jobstream.bus.memory import MemoryBus
from jobstream.models import Event, EventType
from jobstream.server.logs import redact
from jobstream.server.metrics import Metrics
from jobstream.settings import Settings
from jobstream.store.memory import MemoryStore
from jobstream.streams.lifecycle import StreamHub
from serverproc import ServerProcess, finished_job, token

LIFECYCLE = {"JOBSTREAM_DEMO_SPEED": "8", "JOBSTREAM_LOG_PROGRESS_SECONDS": "0.3"}


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()


def serve(
    servers: list[ServerProcess], data_dir: Path, log_format: str, port: int | None = None
) -> ServerProcess:
    server = ServerProcess(
        data_dir, LIFECYCLE, port, args=["--log-level", "info", "--log-format", log_format]
    )
    servers.append(server)
    return server.start()


def secrets_through_every_door(server: ServerProcess) -> dict[str, Any]:
    """Requests that carry credentials in the URL in every way a client can, a signed video
    link, and failing requests; returns the secrets that went into URLs and the jobs made."""
    tokens = {
        spelling: token(f"log-{spelling}", ttl=3600 + i)
        for i, spelling in enumerate(("token", "%74oken", "TOKEN", "Token", "ws", "failing"))
    }
    owner = {"Authorization": f"Bearer {token('log-token', ttl=3600)}"}
    made: dict[str, Any] = {"tokens": tokens}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get(f"/api/v1/jobs?token={tokens['token']}").status_code == 200
        # Starlette decodes the name: this one signs the request in.
        assert client.get(f"/api/v1/jobs?%74oken={tokens['%74oken']}").status_code == 200
        assert client.get(f"/api/v1/jobs?TOKEN={tokens['TOKEN']}").status_code == 401
        assert client.get(f"/api/v1/jobs?Token={tokens['Token']}").status_code == 401

        video = client.post(
            "/api/v1/videos/generate",
            json={"prompt": "a fox at dusk, walking", "model": "sora-2"},
            headers=owner,
        ).json()
        failing = client.post(
            "/api/v1/jobs", json={"kind": "pdf", "params": {"fail_at_step": 1}}, headers=owner
        ).json()
        made["video"], made["failing"] = video["id"], failing["id"]
        client.headers.update(owner)
        assert finished_job(client, video["id"])["status"] == "completed"
        assert finished_job(client, failing["id"])["status"] == "failed"

        ticket = client.post("/api/v1/stream-tickets").json()["ticket"]
        made["ticket"] = ticket
        client.headers.pop("Authorization")
        with client.stream("GET", f"/api/v1/jobs/{video['id']}/events?ticket={ticket}") as sse:
            assert sse.status_code == 200
            sse.read()

        record = client.get(f"/api/v1/videos/{video['id']}", headers=owner).json()
        link = record["video_url"]
        made["signature"] = parse_qs(urlsplit(link).query)["signature"][0]
        played = client.get(link)
        assert played.status_code == 200 and played.headers["content-type"] == "video/mp4"

        # Failing requests with a token in the URL: unknown job, bad params, a bad token.
        assert client.get(f"/api/v1/jobs/nope?token={tokens['failing']}").status_code == 404
        assert (
            client.post(f"/api/v1/jobs?token={tokens['failing']}", json={"kind": "?"}).status_code
            == 422
        )
        assert client.get("/api/v1/jobs?token=not.a-valid.jwt-at-all").status_code == 401

    async def websocket() -> None:
        ws_url = server.url.replace("http", "ws") + f"/api/v1/ws?token={tokens['ws']}"
        async with connect(ws_url) as ws:
            await asyncio.wait_for(ws.recv(), timeout=10)

    asyncio.run(websocket())
    time.sleep(0.3)  # the last lines reach the log file
    return made


def secret_strings(made: dict[str, Any]) -> list[str]:
    """Every secret, whole, and the signature part of each JWT (unique to it)."""
    found = []
    for jwt in [*made["tokens"].values(), made["ticket"]]:
        found += [jwt, jwt.rsplit(".", 1)[1]]
    return [*found, made["signature"]]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_token_ticket_or_signature_reaches_any_log_line(
    servers: list[ServerProcess], tmp_path: Path, log_format: str
) -> None:
    server = serve(servers, tmp_path / "data", log_format)
    made = secrets_through_every_door(server)
    server.stop()
    log = server.log()
    for secret in secret_strings(made):
        assert secret not in log, f"a secret reached the {log_format} log"
    # What was redacted is still there to read, the name as the client spelled it.
    for spelling in ("token", "%74oken", "TOKEN", "Token", "ticket", "signature"):
        assert f"{spelling}=[redacted]" in log, spelling
    assert '"WebSocket /api/v1/ws?token=[redacted]"' in log.replace('\\"', '"')


def test_json_logs_are_one_object_per_line_with_an_access_line_per_request_and_the_jobs_life(
    servers: list[ServerProcess], tmp_path: Path
) -> None:
    server = serve(servers, tmp_path / "data", "json")
    made = secrets_through_every_door(server)
    server.stop()
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, or this raises
    for record in records:
        assert {"timestamp", "level", "logger", "message"} <= record.keys(), record
        assert record["timestamp"].endswith("Z") and "T" in record["timestamp"]

    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert all({"client", "method", "path", "status"} <= r.keys() for r in access)
    refused = [r for r in access if r["path"].startswith("/api/v1/jobs?TOKEN=")]
    assert [(r["method"], r["status"], r["path"]) for r in refused] == [
        ("GET", 401, "/api/v1/jobs?TOKEN=[redacted]")
    ]
    assert any(
        r["path"] == "/api/v1/jobs/nope?token=[redacted]" and r["status"] == 404 for r in access
    )
    assert records[0]["message"].startswith("jobstream on http://127.0.0.1:")

    def life(job_id: str) -> list[dict[str, Any]]:
        return [r for r in records if r.get("job_id") == job_id and r["logger"] == "jobstream.jobs"]

    video = life(made["video"])
    events = [r["event"] for r in video]
    assert events[:2] == ["job.submitted", "job.started"] and events[-1] == "job.finished"
    assert "job.progress" in events, events  # the video runs ~2.5 s, lines every 0.3 s at most
    assert all(
        e in ("job.submitted", "job.started", "job.progress", "job.finished") for e in events
    )
    started, finished = video[1], video[-1]
    assert 0 <= started["waited_seconds"] < 5 and started["kind"] == "video"
    assert finished["status"] == "completed" and 1 < finished["duration_seconds"] < 20
    progress = [r for r in video if r["event"] == "job.progress"]
    moments = [r["timestamp"] for r in progress]
    assert len(moments) == len(set(moments)) and len(progress) <= 2.5 / 0.3 + 2
    assert all(0 < r["progress"] <= 100 and r["total_steps"] == 8 for r in progress)

    failed = life(made["failing"])[-1]
    assert failed["event"] == "job.finished" and failed["status"] == "failed"
    assert failed["level"] == "WARNING" and "Pipeline error" in failed["error"]


def test_a_job_recovered_after_a_crash_is_logged(
    servers: list[ServerProcess], tmp_path: Path
) -> None:
    first = serve(servers, tmp_path / "data", "json")
    with httpx.Client(
        base_url=first.url, timeout=30, headers={"Authorization": f"Bearer {token('log-crash')}"}
    ) as client:
        job = client.post("/api/v1/jobs", json={"kind": "forever", "params": {}}).json()
        assert client.get(f"/api/v1/jobs/{job['id']}?wait=5&after_seq=2").json()["status"] == (
            "running"
        )
    first.kill()
    second = serve(servers, tmp_path / "data", "json", port=first.port)
    second.stop()
    records = [json.loads(line) for line in second.log().splitlines() if line.strip()]
    recovered = [r for r in records if r.get("event") == "job.recovered"]
    assert [(r["job_id"], r["outcome"], r["level"]) for r in recovered] == [
        (job["id"], "failed", "WARNING")  # "forever" fails when interrupted
    ]
    assert "stopped" in recovered[0]["reason"]


async def test_a_stream_dropped_for_falling_behind_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(stream_backlog_soft=1, stream_backlog_hard=2)
    bus = MemoryBus()
    hub = StreamHub(settings, MemoryStore(), bus, Metrics())
    await hub.start()
    try:
        handle = await hub.open("slow-reader", "sse", job_id="j1")
        logs = [
            Event(job_id="j1", owner="o", seq=n, type=EventType.LOG, data={"message": str(n)})
            for n in range(1, 6)
        ]
        await bus.publish(logs)  # log lines are never coalesced: past the hard bound, dropped
        assert handle.subscriber.close_reason == "overflow"
        with caplog.at_level(logging.WARNING, logger="jobstream"):
            await hub.close(handle)
    finally:
        await hub.shutdown()
    dropped = [r for r in caplog.records if getattr(r, "event", None) == "stream.overflow"]
    assert len(dropped) == 1
    assert (dropped[0].user, dropped[0].transport, dropped[0].job_id) == (
        "slow-reader",
        "sse",
        "j1",
    )


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("GET /x?token=abc HTTP/1.1", "GET /x?token=[redacted] HTTP/1.1"),
        ("/x?a=1&%74oken=abc&b=2", "/x?a=1&%74oken=[redacted]&b=2"),
        ("/x?TOKEN=abc&Ticket=def", "/x?TOKEN=[redacted]&Ticket=[redacted]"),
        ("/v.mp4?expires=1&%73ignature=abc", "/v.mp4?expires=1&%73ignature=[redacted]"),
        ("/x?to+ken=abc&tokens=abc&token=", "/x?to+ken=abc&tokens=abc&token="),
        ('"/x?token=abc"', '"/x?token=[redacted]"'),
    ],
)
def test_redaction_compares_the_decoded_name_in_any_case(line: str, shown: str) -> None:
    assert redact(line) == shown
