"""The canonical REST API against a real server: auth, ownership, errors, polling, cancel."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from serverproc import ServerProcess, bearer, token
from ssehelp import SSEReader, collect


@pytest.fixture
async def alice(server: ServerProcess) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("alice"), timeout=30) as c:
        yield c


async def submit(client: httpx.AsyncClient, kind: str, params: dict | None = None) -> dict:
    response = await client.post("/api/v1/jobs", json={"kind": kind, "params": params or {}})
    assert response.status_code == 202, response.text
    return response.json()


async def test_no_token_is_401_with_a_message_on_every_route(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as anon:
        for method, path in [
            ("GET", "/api/v1/jobs"),
            ("POST", "/api/v1/jobs"),
            ("GET", "/api/v1/jobs/x"),
            ("GET", "/api/v1/jobs/x/events"),
            ("GET", "/api/v1/events"),
            ("POST", "/api/v1/jobs/x/cancel"),
            ("GET", "/api/v1/jobs/x/result"),
        ]:
            response = await anon.request(method, path, json={"kind": "video"})
            assert response.status_code == 401, (method, path, response.text)
            assert "Bearer" in response.json()["detail"]
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "Basic dXNlcjpwYXNz",
        f"Bearer {token('alice', secret='some-other-secret-that-is-long-enough-0123')}",
        f"Bearer {token('alice', ttl=-10)}",
    ],
    ids=["garbage", "basic", "wrong-secret", "expired"],
)
async def test_bad_tokens_are_401(server: ServerProcess, header: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.get("/api/v1/jobs", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["detail"]


async def test_token_in_query_and_cookie_are_accepted(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        by_query = await client.get(f"/api/v1/jobs?token={token('alice')}")
    async with httpx.AsyncClient(
        base_url=server.url, timeout=10, cookies={"jobstream_token": token("alice")}
    ) as client:
        by_cookie = await client.get("/api/v1/jobs")
    assert by_query.status_code == 200 and by_cookie.status_code == 200


async def test_another_users_job_answers_exactly_as_a_missing_one(
    server: ServerProcess, alice: httpx.AsyncClient
) -> None:
    job = await submit(alice, "character")
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("mallory"), timeout=10) as m:
        for path in ["", "/events", "/result"]:
            theirs = await m.get(f"/api/v1/jobs/{job['id']}{path}")
            missing = await m.get(f"/api/v1/jobs/doesnotexist{path}")
            assert theirs.status_code == missing.status_code == 404
            assert theirs.json()["detail"] == f"job {job['id']!r} not found"
        cancel = await m.post(f"/api/v1/jobs/{job['id']}/cancel")
        assert cancel.status_code == 404
        listed = (await m.get("/api/v1/jobs")).json()["items"]
        assert job["id"] not in {j["id"] for j in listed}
    async with httpx.AsyncClient(
        base_url=server.url, headers=bearer("root", ["admin"]), timeout=10
    ) as admin:
        assert (await admin.get(f"/api/v1/jobs/{job['id']}")).status_code == 200


async def test_bad_params_are_422_naming_the_field_and_store_nothing(
    alice: httpx.AsyncClient,
) -> None:
    before = len((await alice.get("/api/v1/jobs?limit=200")).json()["items"])
    cases = [
        ({"kind": "pdf", "params": {"pages": "many"}}, ["body", "params", "pages"]),
        ({"kind": "pdf", "params": {"pages": 0}}, ["body", "params", "pages"]),
        ({"kind": "pdf", "params": {"colour": "red"}}, ["body", "params", "colour"]),
        ({"kind": "video", "params": {}}, ["body", "params", "prompt"]),
        ({"kind": "nope", "params": {}}, ["body", "kind"]),
        ({"params": {}}, ["body", "kind"]),
        ({"kind": "pdf", "params": [1, 2]}, ["body", "params"]),
    ]
    for body, loc in cases:
        response = await alice.post("/api/v1/jobs", json=body)
        assert response.status_code == 422, (body, response.text)
        detail = response.json()["detail"]
        assert any(error["loc"] == loc for error in detail), (body, detail)
        assert all(error["msg"] for error in detail)
    broken = await alice.post(
        "/api/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    after = len((await alice.get("/api/v1/jobs?limit=200")).json()["items"])
    assert after == before


async def test_oversized_body_is_413(alice: httpx.AsyncClient) -> None:
    response = await alice.post(
        "/api/v1/jobs", json={"kind": "video", "params": {"prompt": "x" * 2_000_000}}
    )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


async def test_list_is_newest_first_with_filters_and_cursor(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("lister"), timeout=10) as c:
        ids = [(await submit(c, "character"))["id"] for _ in range(5)]
        page1 = (await c.get("/api/v1/jobs?limit=3")).json()
        page2 = (await c.get(f"/api/v1/jobs?limit=3&cursor={page1['next_cursor']}")).json()
        assert [j["id"] for j in page1["items"] + page2["items"]] == ids[::-1]
        assert page2["next_cursor"] is None
        only = (await c.get("/api/v1/jobs?kind=video")).json()["items"]
        assert only == []
        bad = await c.get("/api/v1/jobs?cursor=@@@")
        assert bad.status_code == 400
        bad_status = await c.get("/api/v1/jobs?status=nonsense")
        assert bad_status.status_code == 422


async def test_etag_304_and_long_poll(alice: httpx.AsyncClient) -> None:
    job = await submit(alice, "pdf")
    first = await alice.get(f"/api/v1/jobs/{job['id']}")
    tag = first.headers["etag"]
    unchanged = await alice.get(f"/api/v1/jobs/{job['id']}", headers={"If-None-Match": tag})
    if unchanged.status_code == 200:  # the job moved between the two reads
        assert unchanged.headers["etag"] != tag
    else:
        assert unchanged.status_code == 304 and unchanged.content == b""
    seq = first.json()["seq"]
    started = time.monotonic()
    polled = await alice.get(f"/api/v1/jobs/{job['id']}?wait=10&after_seq={seq}")
    assert polled.status_code == 200 and polled.json()["seq"] > seq
    assert time.monotonic() - started < 5
    await alice.post(f"/api/v1/jobs/{job['id']}/cancel")


async def test_long_poll_returns_after_the_wait_when_nothing_changes(
    alice: httpx.AsyncClient,
) -> None:
    job = await submit(alice, "character")
    await collect(alice, f"/api/v1/jobs/{job['id']}/events")
    done = (await alice.get(f"/api/v1/jobs/{job['id']}")).json()
    started = time.monotonic()
    polled = await alice.get(f"/api/v1/jobs/{job['id']}?wait=1&after_seq={done['seq']}")
    assert polled.json()["seq"] == done["seq"]
    assert time.monotonic() - started < 1.5  # a finished job does not wait


async def test_cancel_of_a_running_job_lands_within_one_progress_interval(
    alice: httpx.AsyncClient,
) -> None:
    interval = 0.2
    job = await submit(alice, "forever", {"interval_ms": interval * 1000})
    async with alice.stream("GET", f"/api/v1/jobs/{job['id']}/events") as response:
        reader = SSEReader(response)
        while (event := await reader.next()) is not None and event.event != "progress":
            pass
        asked = time.monotonic()
        cancel = await alice.post(f"/api/v1/jobs/{job['id']}/cancel")
        assert cancel.status_code == 202
        rest = await reader.until_end()
        landed = time.monotonic()
    assert rest[-1].event == "cancelled"
    assert rest[-1].json["data"]["message"] == "Cancelled by user"
    assert landed - asked < interval + 0.15
    final = (await alice.get(f"/api/v1/jobs/{job['id']}")).json()
    assert final["status"] == "cancelled"
    again = await alice.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 202 and again.json()["status"] == "cancelled"
    result = await alice.get(f"/api/v1/jobs/{job['id']}/result")
    assert result.status_code == 409 and "cancelled" in result.json()["detail"]


async def test_cancel_of_a_queued_job_is_immediate_and_of_a_finished_one_409(
    alice: httpx.AsyncClient,
) -> None:
    # The server has four embedded workers: fill them, then one more job waits in the queue.
    busy = [await submit(alice, "forever", {"interval_ms": 50}) for _ in range(4)]
    for job in busy:
        await alice.get(f"/api/v1/jobs/{job['id']}?wait=5&after_seq=1")
    waiting = await submit(alice, "forever", {"interval_ms": 50})
    cancelled = await alice.post(f"/api/v1/jobs/{waiting['id']}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    events = await collect(alice, f"/api/v1/jobs/{waiting['id']}/events?last_event_id=0")
    assert [e.event for e in events] == ["status_change", "cancelled"]
    for job in busy:
        assert (await alice.post(f"/api/v1/jobs/{job['id']}/cancel")).status_code == 202
    for job in busy:
        events = await collect(alice, f"/api/v1/jobs/{job['id']}/events?last_event_id=2")
        assert events[-1].event == "cancelled"

    done = await submit(alice, "character")
    await collect(alice, f"/api/v1/jobs/{done['id']}/events")
    conflict = await alice.post(f"/api/v1/jobs/{done['id']}/cancel")
    assert conflict.status_code == 409 and "completed" in conflict.json()["detail"]


async def test_result_is_409_while_running_and_json_for_kinds_without_a_file(
    alice: httpx.AsyncClient,
) -> None:
    job = await submit(alice, "pdf")
    early = await alice.get(f"/api/v1/jobs/{job['id']}/result")
    assert early.status_code == 409 and "once it completes" in early.json()["detail"]
    await alice.post(f"/api/v1/jobs/{job['id']}/cancel")
    character = await submit(alice, "character", {"name": "Ada", "age": 36})
    await collect(alice, f"/api/v1/jobs/{character['id']}/events")
    result = await alice.get(f"/api/v1/jobs/{character['id']}/result")
    assert result.status_code == 200
    assert result.json()["result"]["characterId"]


async def test_failed_job_reports_its_reason(alice: httpx.AsyncClient) -> None:
    job = await submit(alice, "pdf", {"fail_at_step": 1})
    events = await collect(alice, f"/api/v1/jobs/{job['id']}/events")
    assert events[-1].event == "failed"
    assert events[-1].json["data"]["message"] == "Pipeline error: PDF extraction failed"
    crashed = await submit(alice, "crash")
    events = await collect(alice, f"/api/v1/jobs/{crashed['id']}/events")
    assert events[-1].json["data"]["message"] == "RuntimeError: disk on fire"
    final = (await alice.get(f"/api/v1/jobs/{crashed['id']}")).json()
    assert final["status"] == "failed" and final["error"] == "RuntimeError: disk on fire"


async def test_sync_handler_runs_in_a_thread_and_reports_steps(alice: httpx.AsyncClient) -> None:
    job = await submit(alice, "stepped_sync", {"steps": 4, "step_seconds": 0.05})
    events = await collect(alice, f"/api/v1/jobs/{job['id']}/events?last_event_id=0")
    steps = [e.json["data"]["current_step"] for e in events if e.event == "progress"]
    logs = [e.json["data"]["message"] for e in events if e.event == "log"]
    assert steps == [1, 2, 3, 4] and logs == ["step 1", "step 2", "step 3", "step 4"]
    assert events[-1].json["data"]["result"] == {"steps": 4}


async def test_stream_ticket_opens_a_stream_once(
    server: ServerProcess, alice: httpx.AsyncClient
) -> None:
    job = await submit(alice, "character")
    ticket = (await alice.post("/api/v1/stream-tickets")).json()
    assert 0 < ticket["expires_in"] <= 60
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anon:
        events = await collect(anon, f"/api/v1/jobs/{job['id']}/events?ticket={ticket['ticket']}")
        assert events[-1].event in {"completed", "snapshot"}
        reused = await anon.get(f"/api/v1/jobs/{job['id']}/events?ticket={ticket['ticket']}")
        assert reused.status_code == 401 and "already used" in reused.json()["detail"]


async def test_tokens_in_urls_never_reach_the_log(
    server: ServerProcess, alice: httpx.AsyncClient
) -> None:
    secret = token("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        await client.get(f"/api/v1/jobs?token={secret}")
    await asyncio.sleep(0.2)
    assert secret not in server.log()


async def test_health_readiness_metrics_docs(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        metrics = (await client.get("/metrics")).text
        assert "jobstream_open_streams" in metrics and "jobstream_events_delivered" in metrics
        assert (await client.get("/docs")).status_code == 200
        spec = (await client.get("/openapi.json")).json()
        assert "/api/v1/jobs/{job_id}/events" in spec["paths"]


async def test_a_lone_surrogate_in_params_is_a_422_not_a_500(alice: httpx.AsyncClient) -> None:
    """JSON may escape a lone surrogate; UTF-8 (and so the store) cannot hold one."""
    response = await alice.post(
        "/api/v1/jobs",
        content=b'{"kind": "task", "params": {"name": "\\ud800"}}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert "valid Unicode" in response.json()["detail"][0]["msg"]
