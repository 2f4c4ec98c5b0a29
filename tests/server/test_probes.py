"""What fault and abuse probes found, each pinned against a real server: the wrong client let
in, a 5xx on bad input, a stream that hangs on an absurd resume position."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from serverproc import ServerProcess, bearer, token
from ssehelp import SSEReader, collect


@pytest.fixture
async def alice(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("alice"), timeout=30) as c:
        yield c


async def finished_job(client: httpx.AsyncClient, kind: str = "character") -> dict:
    job = (await client.post("/api/v1/jobs", json={"kind": kind, "params": {}})).json()
    events = await collect(client, f"/api/v1/jobs/{job['id']}/events")
    assert events[-1].event == "completed"
    return (await client.get(f"/api/v1/jobs/{job['id']}")).json()


async def ws_refusal(url: str) -> tuple[int, str, list[str]]:
    """The close code and reason of a WebSocket, and whatever it received before."""
    received: list[str] = []
    async with connect(url) as ws:
        try:
            while True:
                received.append(str(await ws.recv()))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason, received
    raise AssertionError("unreachable")


async def test_a_reporter_token_cannot_watch_over_any_transport(
    server: ServerProcess, alice: httpx.AsyncClient
) -> None:
    """Over HTTP and SSE a reporter token was refused; over WebSocket it got the snapshots and
    live events of every job (``/api/v1/jobs/{id}/ws``, ``/api/v1/ws``, ``/ws/jobs/...``)."""
    job = await finished_job(alice)
    reporter = token("worker-7", ["reporter"])
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as anon:
        auth = {"Authorization": f"Bearer {reporter}"}
        assert (await anon.get(f"/api/v1/jobs/{job['id']}", headers=auth)).status_code == 403
        assert (await anon.get(f"/api/v1/jobs/{job['id']}/events", headers=auth)).status_code == 403
        assert (await anon.get(f"/stream/status/{job['id']}", headers=auth)).status_code == 403
    for path in (f"/api/v1/jobs/{job['id']}/ws", "/api/v1/ws", f"/ws/jobs/{job['id']}", "/ws/jobs"):
        code, reason, received = await ws_refusal(
            f"ws://127.0.0.1:{server.port}{path}?token={reporter}"
        )
        assert (code, received) == (4403, []), (path, code, reason, received)
        assert "reporter" in reason


async def test_a_stream_ticket_opens_streams_and_nothing_else(
    server: ServerProcess, alice: httpx.AsyncClient
) -> None:
    """``POST /api/v1/jobs?ticket=`` submitted a job: a ticket worked on every route."""
    job = await finished_job(alice)

    async def ticket() -> str:
        return str((await alice.post("/api/v1/stream-tickets")).json()["ticket"])

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anon:
        body = {"kind": "character", "params": {}}
        for method, path in (
            ("POST", "/api/v1/jobs"),
            ("GET", "/api/v1/jobs"),
            ("GET", f"/api/v1/jobs/{job['id']}"),
            ("POST", f"/api/v1/jobs/{job['id']}/cancel"),
            ("GET", f"/api/v1/jobs/{job['id']}/result"),
            ("POST", "/api/v1/stream-tickets"),
            ("GET", f"/api/v1/jobs/{job['id']}?TICKET=x"),
        ):
            url = f"{path}{'&' if '?' in path else '?'}ticket={await ticket()}"
            response = await anon.request(method, url, json=body)
            assert response.status_code == 401, (method, path, response.text)
            assert "stream ticket" in response.json()["detail"]
        # Streams: SSE, a long-poll of one job, WebSocket.
        events = await collect(anon, f"/api/v1/jobs/{job['id']}/events?ticket={await ticket()}")
        assert events[0].event == "snapshot"
        polled = await anon.get(f"/api/v1/jobs/{job['id']}?wait=1&ticket={await ticket()}")
        assert polled.status_code == 200 and polled.json()["id"] == job["id"]
    ws_url = f"ws://127.0.0.1:{server.port}/api/v1/jobs/{job['id']}/ws?ticket={await ticket()}"
    async with connect(ws_url) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"


async def test_a_malformed_video_link_is_refused_not_a_500(server: ServerProcess) -> None:
    """``?signature=%C3%A9`` made ``hmac.compare_digest`` raise: an unauthenticated 500."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as anon:
        for query, status in (
            ("expires=1&signature=%C3%A9", 403),
            ("expires=1&signature=%00%ff", 403),
            ("expires=99999999999999999999999999&signature=ab", 403),
            ("expires=soon&signature=ab", 400),
            ("expires=-5&signature=ab", 400),
            ("signature=ab", 403),
            ("", 403),
        ):
            response = await anon.get(f"/api/v1/videos/x/video.mp4?{query}")
            assert response.status_code == status, (query, response.text)
            assert response.json()["detail"]


async def test_absurd_resume_positions_get_the_snapshot_not_a_hang_or_a_500(
    server: ServerProcess, alice: httpx.AsyncClient
) -> None:
    """``Last-Event-ID: 9223372036854775808`` was a 500 on the all-jobs stream (SQLite integer
    overflow) and an aborted response on a job's stream (which an EventSource retries forever);
    ``?after_seq=`` of the same size closed a WebSocket with 1006."""
    job = await finished_job(alice)
    for absurd in ("9223372036854775808", "99999999999999999999999999999", "9223372036854775807"):
        # A finished job: its snapshot, then the close.
        events = await collect(
            alice, f"/api/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": absurd}
        )
        assert [e.event for e in events] == ["snapshot"], absurd
        assert events[0].json["data"]["status"] == "completed"
        # The all-jobs stream: a fresh snapshot, then live.
        async with alice.stream("GET", "/api/v1/events", headers={"Last-Event-ID": absurd}) as r:
            assert r.status_code == 200
            first = await SSEReader(r).next()
            assert first is not None and first.event == "snapshot"
            assert int(first.id or -1) < 2**63
        url = f"ws://127.0.0.1:{server.port}/api/v1/jobs/{job['id']}/ws"
        async with connect(f"{url}?token={token('alice')}&after_seq={absurd}") as ws:
            message = json.loads(await ws.recv())
            assert message["type"] == "snapshot" and message["data"]["status"] == "completed"
    for bad in ("-1", "x", "1e3"):
        response = await alice.get(
            f"/api/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": bad}
        )
        assert response.status_code == 400, bad
        assert "Last-Event-ID" in response.json()["detail"]
    arabic_three = await alice.get(f"/api/v1/jobs/{job['id']}/events?last_event_id=%D9%A3")
    assert arabic_three.status_code == 400
    code, reason, _ = await ws_refusal(
        f"ws://127.0.0.1:{server.port}/api/v1/ws?token={token('alice')}&after_cursor=-3"
    )
    assert code == 1008 and "after_cursor" in reason


async def test_an_oversized_chunked_body_is_413_not_400(
    server: ServerProcess, alice: httpx.AsyncClient
) -> None:
    """A chunked body (no Content-Length) past the limit got 400 "error parsing the body"."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"kind": "video", "params": {"prompt": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}}'

    before = len((await alice.get("/api/v1/jobs?limit=200")).json()["items"])
    log_before = len(server.log())
    response = await alice.post(
        "/api/v1/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert "at most" in response.json()["detail"]
    assert len((await alice.get("/api/v1/jobs?limit=200")).json()["items"]) == before
    assert "Traceback" not in server.log()[log_before:]  # a client's mistake, not an error


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/jobs", {"kind": "pdf", "params": {"pages": True}}, "pages"),
        ("/api/v1/jobs", {"kind": "pdf", "params": {"pages": "3"}}, "pages"),
        ("/api/v1/jobs", {"kind": "pdf", "params": {"fail_at_step": 2.0}}, "fail_at_step"),
        ("/api/v1/jobs", {"kind": "video", "params": {"prompt": 7}}, "prompt"),
        ("/api/v1/characters/queue", {"name": "Ann", "age": "30"}, "age"),
        ("/api/v1/tasks", {"language": 1}, "language"),
    ],
)
async def test_job_params_of_the_wrong_type_are_refused_not_coerced(
    alice: httpx.AsyncClient, path: str, body: dict, field: str
) -> None:
    """``{"pages": true}`` and ``{"pages": "3"}`` were accepted as numbers."""
    response = await alice.post(path, json=body)
    assert response.status_code == 422, response.text
    assert any(error["loc"][-1] == field for error in response.json()["detail"])


async def test_job_params_of_the_right_type_still_go_in(alice: httpx.AsyncClient) -> None:
    ok = await alice.post(
        "/api/v1/jobs", json={"kind": "video", "params": {"prompt": "a fox", "duration_seconds": 1}}
    )
    assert ok.status_code == 202 and ok.json()["params"]["duration_seconds"] == 1.0
    media = await alice.post("/api/v1/media/queue", json={"media_type": "audio"})
    assert media.status_code == 200
