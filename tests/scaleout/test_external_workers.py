"""External workers over HTTP against a real server: claim (long-poll, wake on submit, 204),
reports (202 with the server's seq, heartbeat), refusals (403, 409, 422), cancel, a silent
worker announced stalled then re-queued, and the two worked examples (Node, shell) run as a
user would run them, watched over SSE."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from serverproc import ROOT, ServerProcess, bearer, token
from ssehelp import SSEEvent, SSEReader, collect

USER = bearer("alice")
REPORTER = bearer("ocr-worker", ["reporter"])
KINDS = "ocr,transcode"


@pytest.fixture
def external_server(make_server: Callable[..., ServerProcess]) -> Callable[..., ServerProcess]:
    def make(**env: str) -> ServerProcess:
        return make_server({"JOBSTREAM_EXTERNAL_KINDS": KINDS, **env}).start()

    return make


@pytest.fixture
async def client(external_server: Callable[..., ServerProcess]) -> AsyncIterator[httpx.AsyncClient]:
    server = external_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


async def submit(client: httpx.AsyncClient, kind: str = "ocr", **params: Any) -> dict[str, Any]:
    answer = await client.post("/api/v1/jobs", json={"kind": kind, "params": params}, headers=USER)
    assert answer.status_code == 202, answer.text
    job: dict[str, Any] = answer.json()
    return job


async def claim(
    client: httpx.AsyncClient, kinds: list[str] | None = None, wait: float = 0
) -> httpx.Response:
    return await client.post(
        "/api/v1/workers/claim", json={"kinds": kinds or ["ocr"], "wait": wait}, headers=REPORTER
    )


async def claimed(client: httpx.AsyncClient, **kwargs: Any) -> tuple[dict[str, Any], str]:
    answer = await claim(client, **kwargs)
    assert answer.status_code == 200, (answer.status_code, answer.text)
    body = answer.json()
    return body["job"], body["lease"]


async def report(
    client: httpx.AsyncClient,
    job_id: str,
    lease: str,
    type_: str,
    data: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"lease": lease, "type": type_}
    if data is not None:
        body["data"] = data
    return await client.post(
        f"/api/v1/jobs/{job_id}/events", json=body, headers=headers or REPORTER
    )


async def stored(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}", headers=USER)).json()
    return job


async def stored_log(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    """Every stored event of a finished job (a resume from 0 replays the store, then closes)."""
    events = await collect(
        client, f"/api/v1/jobs/{job_id}/events", headers={**USER, "Last-Event-ID": "0"}
    )
    return [e.json for e in events]


def envelopes(events: list[SSEEvent]) -> list[dict[str, Any]]:
    return [e.json for e in events if e.event != "snapshot"]


async def test_a_worker_claims_a_job_reports_it_to_the_end_and_a_watcher_sees_it_gap_free(
    client: httpx.AsyncClient,
) -> None:
    params = {"document": "s3://bucket/scan.pdf", "pages": [1, 2, 3], "options": {"lang": "eng"}}
    job = await submit(client, **params)
    assert job["status"] == "queued" and job["params"] == params  # any JSON object, as given
    async with client.stream("GET", f"/api/v1/jobs/{job['id']}/events", headers=USER) as stream:
        reader = SSEReader(stream)
        snapshot = await reader.next()
        assert snapshot is not None and snapshot.event == "snapshot" and snapshot.id == "1"

        answer = await claim(client)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["job"]["id"] == job["id"] and body["job"]["status"] == "running"
        assert body["lease_seconds"] == 30 and len(body["lease"]) >= 32
        assert body["lease"] not in json.dumps(body["job"])  # the lease holder is not the lease
        lease = body["lease"]

        seqs = []
        for step in (1, 2, 3):
            seqs.append(
                (
                    await report(
                        client,
                        job["id"],
                        lease,
                        "progress",
                        {
                            "progress": step * 30.0,
                            "current_step": step,
                            "total_steps": 3,
                            "step_name": f"page {step}",
                            "message": f"reading page {step}",
                        },
                    )
                ).json()["seq"]
            )
            answer = await report(
                client, job["id"], lease, "log", {"level": "info", "message": f"page {step} ok"}
            )
            assert answer.status_code == 202
            seqs.append(answer.json()["seq"])
        beat = await report(client, job["id"], lease, "heartbeat")
        assert beat.status_code == 202 and beat.json() == {"seq": seqs[-1]}  # nothing written
        done = await report(client, job["id"], lease, "completed", {"result": {"words": 812}})
        assert done.status_code == 202, done.text
        seqs.append(done.json()["seq"])
        assert seqs == list(range(3, 10))  # 1 queued, 2 running: the server numbers them

        live = envelopes(await reader.until_end())
    assert [e["seq"] for e in live] == list(range(2, 10))
    assert live[0]["type"] == "status_change" and live[0]["data"]["new_status"] == "running"
    progress = [e["data"] for e in live if e["type"] == "progress"]
    assert [(p["current_step"], p["step_name"]) for p in progress] == [
        (1, "page 1"),
        (2, "page 2"),
        (3, "page 3"),
    ]
    assert [e["data"]["step"] for e in live if e["type"] == "log"] == [1, 2, 3]
    final = live[-1]
    assert final["type"] == "completed" and final["data"]["result"] == {"words": 812}
    assert final["data"]["words"] == 812 and final["data"]["message"] == "Completed"
    # What the watcher received live is what the store keeps, event for event.
    assert (await stored_log(client, job["id"]))[1:] == live
    finished = await stored(client, job["id"])
    assert finished["status"] == "completed" and finished["progress"] == 100.0
    assert (await client.get(f"/api/v1/jobs/{job['id']}/result", headers=USER)).json() == {
        "job_id": job["id"],
        "result": {"words": 812},
    }
    again = await report(client, job["id"], lease, "progress", {"progress": 1.0})
    assert again.status_code == 409 and again.json()["job_status"] == "completed"


async def test_a_waiting_claim_is_woken_by_a_submit_not_by_its_next_look(
    client: httpx.AsyncClient,
) -> None:
    started = time.monotonic()
    nothing = await claim(client, wait=0.5)
    assert nothing.status_code == 204 and nothing.content == b""
    assert 0.4 < time.monotonic() - started < 3

    waiting = asyncio.create_task(claim(client, ["transcode", "ocr"], wait=20))
    # Just after a look at the queue: the next one is a second away.
    await asyncio.sleep(1.15)
    assert not waiting.done()
    submitted = time.monotonic()
    job = await submit(client, "transcode", input="a.mov")
    answer = await waiting
    latency = time.monotonic() - submitted
    assert answer.status_code == 200 and answer.json()["job"]["id"] == job["id"]
    assert latency < 0.4, latency


async def test_claims_refuse_kinds_that_are_not_external_and_tokens_that_are_not_reporters(
    client: httpx.AsyncClient,
) -> None:
    for kinds in (["task"], ["ocr", "no-such-kind"]):
        answer = await claim(client, kinds)
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["detail"]
        assert "not on external workers" in error["msg"] and "ocr, transcode" in error["msg"]
    for body in ({"kinds": []}, {"kinds": ["ocr"], "wait": 61}, {"kinds": "ocr"}):
        answer = await client.post("/api/v1/workers/claim", json=body, headers=REPORTER)
        assert answer.status_code == 422, (body, answer.text)
    job = await submit(client)
    user = await client.post("/api/v1/workers/claim", json={"kinds": ["ocr"]}, headers=USER)
    assert user.status_code == 403 and "reporter" in user.json()["detail"]
    anonymous = await client.post("/api/v1/workers/claim", json={"kinds": ["ocr"]})
    assert anonymous.status_code == 401
    assert (await stored(client, job["id"]))["status"] == "queued"  # nobody took it
    _, lease = await claimed(client)
    refused = await report(client, job["id"], lease, "progress", {"progress": 5.0}, USER)
    assert refused.status_code == 403
    # A reporter may report, and nothing else.
    assert (await client.get(f"/api/v1/jobs/{job['id']}", headers=REPORTER)).status_code == 403
    assert (await stored(client, job["id"]))["seq"] == 2


async def test_a_report_under_a_lease_that_does_not_hold_the_job_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    first, second = await submit(client), await submit(client)
    job, lease = await claimed(client)
    other, other_lease = await claimed(client)
    assert {job["id"], other["id"]} == {first["id"], second["id"]}
    before = await stored(client, job["id"])
    for bad_lease in (other_lease, "forged-lease-0000000000000000", lease[:-1] + "x"):
        answer = await report(client, job["id"], bad_lease, "progress", {"progress": 50.0})
        assert answer.status_code == 409, answer.text
        assert "does not hold job" in answer.json()["detail"]
        assert answer.json()["job_status"] == "running"
    # The lease is bound to the reporter that claimed: another reporter's token cannot use it.
    thief = bearer("someone-else", ["reporter"])
    answer = await report(client, job["id"], lease, "log", {"message": "hi"}, thief)
    assert answer.status_code == 409
    assert await stored(client, job["id"]) == before
    missing = await report(client, "no-such-job", lease, "heartbeat")
    assert missing.status_code == 404
    # The right lease still works, and numbers after what is stored.
    ok = await report(client, job["id"], lease, "progress", {"progress": 50.0})
    assert ok.status_code == 202 and ok.json()["seq"] == before["seq"] + 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"type": "progres", "data": {}}, "does not match any of the expected tags"),
        ({"data": {}}, "discriminator 'type'"),
        ({"type": "progress", "data": {"progress": "50"}}, "valid number"),
        ({"type": "progress", "data": {"progress": 150}}, "less than or equal to 100"),
        ({"type": "progress", "data": {"current_step": 4, "total_steps": 3}}, "past total_steps"),
        ({"type": "progress", "data": {"percent": 5}}, "Extra inputs are not permitted"),
        ({"type": "progress", "data": {"state": "stalled"}}, "the server's to set"),
        ({"type": "log", "data": {"level": "info"}}, "Field required"),
        ({"type": "log", "data": {"message": "x", "level": "loud"}}, "'debug', 'info'"),
        ({"type": "failed", "data": {}}, "Field required"),
        ({"type": "completed", "data": {"result": 1, "extra": 2}}, "Extra inputs"),
        ({"type": "heartbeat", "data": {"x": 1}}, "Extra inputs"),
    ],
)
async def test_bad_report_types_and_data_are_refused_saying_what_to_fix(
    client: httpx.AsyncClient, body: dict[str, Any], says: str
) -> None:
    await submit(client)
    job, lease = await claimed(client)
    answer = await client.post(
        f"/api/v1/jobs/{job['id']}/events", json={"lease": lease, **body}, headers=REPORTER
    )
    assert answer.status_code == 422, answer.text
    assert says in json.dumps(answer.json()["detail"]), answer.text
    assert (await stored(client, job["id"]))["seq"] == 2


async def test_cancel_ends_a_running_external_job_at_once_and_its_worker_hears_409(
    client: httpx.AsyncClient,
) -> None:
    await submit(client)
    job, lease = await claimed(client)
    assert (await report(client, job["id"], lease, "progress", {"progress": 10.0})).status_code
    cancelled = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=USER)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    answer = await report(client, job["id"], lease, "heartbeat")
    assert answer.status_code == 409 and answer.json()["job_status"] == "cancelled"
    assert "was cancelled" in answer.json()["detail"]
    log = await stored_log(client, job["id"])
    assert [e["type"] for e in log][-1] == "cancelled" and log[-1]["seq"] == 4


async def test_a_silent_worker_is_announced_stalled_then_its_job_is_requeued_and_claimed_again(
    external_server: Callable[..., ServerProcess],
) -> None:
    server = external_server(JOBSTREAM_LEASE_SECONDS="2")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        job = await submit(client)
        async with client.stream("GET", f"/api/v1/jobs/{job['id']}/events", headers=USER) as stream:
            reader = SSEReader(stream)
            await reader.next()  # the snapshot
            _, lease = await claimed(client)
            assert (
                await report(client, job["id"], lease, "progress", {"progress": 20.0})
            ).is_success
            seen: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while not seen or seen[-1]["data"].get("new_status") != "queued":
                    event = await reader.next()
                    assert event is not None
                    seen.append(event.json)
            # Its late report: 409, and nothing is written.
            late = await report(client, job["id"], lease, "progress", {"progress": 90.0})
            assert late.status_code == 409 and late.json()["job_status"] == "queued"
            job2, lease2 = await claimed(client)
            assert job2["id"] == job["id"] and job2["status"] == "running" and lease2 != lease
            done = await report(client, job["id"], lease2, "completed", {"result": "ok"})
            assert done.status_code == 202
            rest = envelopes(await reader.until_end())
        types = [(e["type"], e["data"].get("state") or e["data"].get("new_status")) for e in seen]
        assert types == [
            ("status_change", "running"),
            ("progress", "running"),
            ("progress", "stalled"),
            ("log", None),
            ("status_change", "queued"),
        ]
        assert (
            seen[3]["data"]["level"] == "warning" and "No word from" in seen[3]["data"]["message"]
        )
        assert [e["type"] for e in rest] == ["status_change", "completed"]
        history = seen + rest
        assert [e["seq"] for e in history] == list(range(2, 2 + len(history)))
        assert (await stored_log(client, job["id"]))[1:] == history


async def test_a_heartbeat_in_time_turns_a_stalled_job_back_and_keeps_its_lease(
    external_server: Callable[..., ServerProcess],
) -> None:
    server = external_server(JOBSTREAM_LEASE_SECONDS="3")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await submit(client)
        job, lease = await claimed(client)
        assert (
            await report(client, job["id"], lease, "progress", {"progress": 5.0, "state": "ocr"})
        ).is_success
        async with asyncio.timeout(10):
            while (await stored(client, job["id"]))["state"] != "stalled":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        beat = await report(client, job["id"], lease, "heartbeat")
        assert beat.status_code == 202
        back = await stored(client, job["id"])
        assert back["state"] == "ocr" and back["seq"] == beat.json()["seq"]
        # Heartbeats every second keep it past several leases.
        for _ in range(5):
            await asyncio.sleep(1)
            assert (await report(client, job["id"], lease, "heartbeat")).status_code == 202
        after = await stored(client, job["id"])
        assert after["status"] == "running" and after["state"] == "ocr"
        assert after["seq"] == back["seq"]  # heartbeats write nothing; no stall, no re-queue


def _worker_env(client: httpx.AsyncClient, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "JOBSTREAM_URL": str(client.base_url).rstrip("/"),
        "JOBSTREAM_TOKEN": token("ocr-worker", ["reporter"]),
        "JOBSTREAM_WORKER_KINDS": "ocr",
        "JOBSTREAM_WORKER_MAX_JOBS": "1",
        **extra,
    }


async def _watch(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    return envelopes(await collect(client, f"/api/v1/jobs/{job_id}/events", headers=USER))


async def _run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["node", "examples/node-worker/worker.mjs"], id="node"),
        pytest.param(["bash", "examples/shell-worker.sh"], id="shell"),
    ],
)
async def test_the_example_worker_runs_a_job_that_a_watcher_sees_step_by_step_to_completed(
    client: httpx.AsyncClient, command: list[str]
) -> None:
    job = await submit(client, pages=3, page_ms=50)
    watcher = asyncio.create_task(_watch(client, job["id"]))
    await asyncio.sleep(0.3)  # the watcher is connected before the worker starts
    code, output = await _run(command, _worker_env(client))
    assert code == 0, output
    events = await asyncio.wait_for(watcher, 10)
    assert [e["seq"] for e in events] == list(range(2, 2 + len(events)))
    progress = [e["data"] for e in events if e["type"] == "progress"]
    assert [(p["current_step"], p["total_steps"]) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert [p["step_name"] for p in progress] == ["Page 1", "Page 2", "Page 3"]
    assert [e["data"]["message"] for e in events if e["type"] == "log"][:1] == ["Reading 3 pages"]
    assert events[-1]["type"] == "completed"
    assert events[-1]["data"]["result"] == {"pages": 3, "words": 3 * 120}
    assert (await stored_log(client, job["id"]))[1:] == events
    assert job["id"] in output


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["node", "examples/node-worker/worker.mjs"], id="node"),
        pytest.param(["bash", "examples/shell-worker.sh"], id="shell"),
    ],
)
async def test_the_example_worker_stops_a_job_cancelled_while_it_runs(
    client: httpx.AsyncClient, command: list[str]
) -> None:
    job = await submit(client, pages=100, page_ms=100)
    worker = asyncio.create_task(_run(command, _worker_env(client)))
    async with asyncio.timeout(20):
        while (await stored(client, job["id"]))["progress"] < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    cancelled = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=USER)
    assert cancelled.status_code == 202
    code, output = await asyncio.wait_for(worker, 20)
    assert code == 0, output
    assert f"job {job['id']} was cancelled" in output, output
    final = await stored(client, job["id"])
    assert final["status"] == "cancelled" and final["progress"] < 50


def test_the_examples_are_where_the_docs_say() -> None:
    docs = (ROOT / "docs" / "external-workers.md").read_text()
    for path in ("examples/node-worker/worker.mjs", "examples/shell-worker.sh"):
        assert (ROOT / path).is_file() and path in docs


async def test_serve_takes_the_external_kinds_as_a_flag(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "flag", args=["--external-kinds", "transcode, scan"])
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            assert (await claim(client, ["scan", "transcode"])).status_code == 204
            refused = await claim(client, ["ocr"])
            assert refused.status_code == 422 and "scan, transcode" in refused.text
            kinds = (await client.get("/api/v1/kinds", headers=USER)).json()
            assert sorted(k["name"] for k in kinds if k["external"]) == ["scan", "transcode"]
    finally:
        server.kill()


@pytest.mark.postgres
async def test_reports_of_one_job_through_two_instances_build_one_history(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Behind a load balancer without stickiness, a worker's reports land on either instance:
    each numbers after what the other stored and builds on its view (no report undoes another's
    step), and the claim of one instance fences the lease out on both once it is lost."""
    from pgdb import postgres_database

    async with postgres_database() as database:
        env = {"JOBSTREAM_STORE_URL": database, "JOBSTREAM_EXTERNAL_KINDS": KINDS}
        a = make_server(env, data_dir=tmp_path / "shared").start()
        b = make_server({**env, "JOBSTREAM_WORKERS": "0"}, data_dir=tmp_path / "shared").start()
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
        ):
            job = await submit(on_a, pages=4)
            claimed_job, lease = await claimed(on_b)
            assert claimed_job["id"] == job["id"]
            answers = []
            for step in range(1, 5):
                via = on_a if step % 2 else on_b
                progress = {"current_step": step, "total_steps": 4, "step_name": f"page {step}"}
                answer = await report(via, job["id"], lease, "progress", progress)
                assert answer.status_code == 202, answer.text
                answers.append(answer.json()["seq"])
                other = on_b if via is on_a else on_a
                # The other instance's next report builds on this step, not on an older view.
                answer = await report(other, job["id"], lease, "progress", {"progress": step * 25})
                assert answer.status_code == 202, answer.text
                answers.append(answer.json()["seq"])
                answer = await report(other, job["id"], lease, "log", {"message": f"p{step}"})
                answers.append(answer.json()["seq"])
            assert answers == list(range(3, 3 + len(answers)))
            assert (await report(on_b, job["id"], lease, "completed", {"result": 4})).is_success
            # Lost on both: the job ended.
            for via in (on_a, on_b):
                assert (await report(via, job["id"], lease, "heartbeat")).status_code == 409
            log = await stored_log(on_b, job["id"])
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
        progress_events = [e["data"] for e in log if e["type"] == "progress"]
        assert [(p["current_step"], p["progress"]) for p in progress_events] == [
            (1, 0.0),
            (1, 25.0),
            (2, 25.0),
            (2, 50.0),
            (3, 50.0),
            (3, 75.0),
            (4, 75.0),
            (4, 100.0),
        ]
        assert log[-1]["type"] == "completed" and log[-1]["data"]["result"] == 4


async def test_a_waiting_claim_is_answered_204_at_once_when_the_server_stops(
    external_server: Callable[..., ServerProcess],
) -> None:
    server = external_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        waiting = asyncio.create_task(claim(client, wait=60))
        await asyncio.sleep(0.5)
        stopped = time.monotonic()
        server.signal(signal.SIGTERM)
        answer = await waiting
        assert answer.status_code == 204
        assert time.monotonic() - stopped < 2
        await asyncio.to_thread(server.wait, 10)  # and the server is gone


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_whole_cycle_across_two_instances_on_postgres_and_redis(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A claim waiting on B is woken by a submit on A; the worker reports through both; it goes
    silent, its lease is lost and the job re-queued; a claim on A takes it over and ends it. A
    watcher on A sees every event live, in one gap-free history identical to the stored log."""
    from pgdb import postgres_database
    from redisdb import REDIS_URL, redis_prefix

    async with postgres_database() as database, redis_prefix() as prefix:
        env = {
            "JOBSTREAM_STORE_URL": database,
            "JOBSTREAM_BUS_URL": REDIS_URL,
            "JOBSTREAM_REDIS_PREFIX": prefix,
            "JOBSTREAM_EXTERNAL_KINDS": KINDS,
            "JOBSTREAM_LEASE_SECONDS": "2",
        }
        a = make_server(env, data_dir=tmp_path / "shared").start()
        b = make_server({**env, "JOBSTREAM_WORKERS": "0"}, data_dir=tmp_path / "shared").start()
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
        ):
            waiting = asyncio.create_task(claim(on_b, wait=20))
            await asyncio.sleep(1.15)  # just after B's look at the queue
            submitted = time.monotonic()
            job = await submit(on_a, pages=2)
            async with on_a.stream(
                "GET",
                f"/api/v1/jobs/{job['id']}/events",
                headers={**USER, "Last-Event-ID": "0"},
            ) as stream:
                reader = SSEReader(stream)
                answer = await waiting
                assert time.monotonic() - submitted < 0.5  # woken through Redis, not by a look
                assert answer.status_code == 200 and answer.json()["job"]["id"] == job["id"]
                lease = answer.json()["lease"]
                first = {"current_step": 1, "total_steps": 2, "step_name": "page 1"}
                assert (await report(on_b, job["id"], lease, "progress", first)).is_success
                assert (await report(on_a, job["id"], lease, "log", {"message": "p1"})).is_success
                live: list[dict[str, Any]] = []
                async with asyncio.timeout(15):  # silent: stalled, then re-queued
                    while not live or live[-1]["data"].get("old_status") != "running":
                        event = await reader.next()
                        assert event is not None
                        live.append(event.json)
                lost = await report(on_b, job["id"], lease, "progress", {"progress": 99.0})
                assert lost.status_code == 409 and lost.json()["job_status"] == "queued"
                taken, lease2 = await claimed(on_a)
                assert taken["id"] == job["id"]
                second = {"current_step": 2, "total_steps": 2, "step_name": "page 2"}
                assert (await report(on_b, job["id"], lease2, "progress", second)).is_success
                done = await report(on_a, job["id"], lease2, "completed", {"result": "ok"})
                assert done.status_code == 202
                live += [e.json for e in await reader.until_end()]
            stored = await stored_log(on_b, job["id"])
        assert [e["seq"] for e in live] == list(range(1, len(live) + 1))
        assert live == stored
        kinds = [(e["type"], e["data"].get("new_status") or e["data"].get("state")) for e in live]
        assert kinds == [
            ("status_change", "queued"),
            ("status_change", "running"),
            ("progress", "running"),
            ("log", None),
            ("progress", "stalled"),
            ("log", None),
            ("status_change", "queued"),
            ("status_change", "running"),
            ("progress", "running"),
            ("completed", None),
        ]


async def test_a_claim_whose_worker_hung_up_takes_no_job(client: httpx.AsyncClient) -> None:
    """A worker killed during its long-poll: the job submitted next goes to a live claim, not
    to the connection nobody reads (where it would wait a whole lease to be re-queued)."""
    with pytest.raises(httpx.ReadTimeout):
        await client.post(
            "/api/v1/workers/claim",
            json={"kinds": ["ocr"], "wait": 20},
            headers=REPORTER,
            timeout=0.5,
        )
    await asyncio.sleep(0.3)
    job = await submit(client)
    answer = await claim(client, wait=3)
    assert answer.status_code == 200 and answer.json()["job"]["id"] == job["id"]
