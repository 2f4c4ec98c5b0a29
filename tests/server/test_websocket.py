"""WebSocket streams against a real server with a real WebSocket client.

The seed-004 test list (WS-001 ... WS-008) runs against ``/ws/jobs/{id}`` and ``/ws/jobs``;
the rest covers the connection cap, resume, heartbeats, the idle limit and the canonical routes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from serverproc import ServerProcess, bearer, token
from ssehelp import collect


def ws_url(server: ServerProcess, path: str, user: str = "wendy", **query: Any) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"token": token(user), **query}.items())
    return f"ws://127.0.0.1:{server.port}{path}?{params}"


async def submit(server: ServerProcess, kind: str, params: dict, user: str = "wendy") -> dict:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(user), timeout=30) as c:
        response = await c.post("/api/v1/jobs", json={"kind": kind, "params": params})
        assert response.status_code == 202, response.text
        return response.json()


async def canonical_log(server: ServerProcess, job_id: str, user: str = "wendy") -> list[dict]:
    """Every canonical envelope of the job, from its SSE log."""
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(user), timeout=30) as c:
        events = await collect(c, f"/api/v1/jobs/{job_id}/events?last_event_id=0")
    return [e.json for e in events]


async def messages_until_close(ws: ClientConnection, limit: float = 30) -> list[dict]:
    received = []
    async with asyncio.timeout(limit):
        try:
            while True:
                received.append(json.loads(await ws.recv()))
        except ConnectionClosed:
            pass
    return received


async def test_ws_001_connect(server: ServerProcess) -> None:
    job = await submit(server, "pdf", {"pages": 3})
    async with connect(ws_url(server, f"/ws/jobs/{job['id']}")) as ws:
        first = json.loads(await ws.recv())
        assert first["job_id"] == job["id"] and first["type"] in {"progress", "status_change"}
        assert isinstance(first["seq"], int)


async def test_ws_002_progress_received(server: ServerProcess) -> None:
    job = await submit(server, "pdf", {"pages": 3})
    async with connect(ws_url(server, f"/ws/jobs/{job['id']}")) as ws:
        received = await messages_until_close(ws)
    progress = [m for m in received if m["type"] == "progress"]
    assert len(progress) >= 12
    for message in progress:
        assert set(message["data"]) == {"current_step", "total_steps", "step_name", "percent"}
        assert isinstance(message["data"]["percent"], int)
    steps = [m["data"]["step_name"] for m in progress if m["data"]["step_name"]]
    assert "AI Upscaling" in steps
    assert progress[-1]["data"]["current_step"] == 12 and progress[-1]["data"]["total_steps"] == 12


async def test_ws_003_status_change_in_order(server: ServerProcess) -> None:
    job = await submit(server, "character", {})
    async with connect(ws_url(server, f"/ws/jobs/{job['id']}", after_seq=0)) as ws:
        received = await messages_until_close(ws)
    changes = [
        (m["data"]["old_status"], m["data"]["new_status"])
        for m in received
        if m["type"] == "status_change"
    ]
    assert changes == [("queued", "queued"), ("queued", "processing"), ("processing", "completed")]


async def test_ws_004_completion_with_a_downloadable_output(server: ServerProcess) -> None:
    job = await submit(server, "pdf", {"pages": 4})
    async with connect(ws_url(server, f"/ws/jobs/{job['id']}")) as ws:
        received = await messages_until_close(ws)
        assert ws.close_code == 1000
    completed = received[-1]
    assert completed["type"] == "completed"
    assert completed["data"]["output_path"] == f"/api/jobs/{job['id']}/download"
    assert completed["data"]["page_count"] == 4
    assert completed["data"]["elapsed_seconds"] > 0
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("wendy")) as c:
        pdf = await c.get(completed["data"]["output_path"])
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        job_view = (await c.get(f"/api/jobs/{job['id']}")).json()
        assert job_view["status"] == "completed"


async def test_ws_005_error(server: ServerProcess) -> None:
    job = await submit(server, "pdf", {"fail_at_step": 1})
    async with connect(ws_url(server, f"/ws/jobs/{job['id']}")) as ws:
        received = await messages_until_close(ws)
    assert received[-2]["type"] == "status_change"
    assert received[-2]["data"] == {"old_status": "processing", "new_status": "failed"}
    assert received[-1] == {
        "type": "error",
        "job_id": job["id"],
        "seq": received[-1]["seq"],
        "data": {"message": "Pipeline error: PDF extraction failed"},
    }


async def test_ws_006_cleanup_on_disconnect(server: ServerProcess) -> None:
    job = await submit(server, "forever", {"interval_ms": 100})
    baseline = server.metric("jobstream_bus_subscriptions")
    url = ws_url(server, f"/ws/jobs/{job['id']}")
    for _ in range(200):
        async with connect(url) as ws:
            await ws.recv()
    for _ in range(50):
        if server.metric("jobstream_bus_subscriptions") == baseline:
            break
        await asyncio.sleep(0.05)
    assert server.metric("jobstream_bus_subscriptions") == baseline
    assert server.metric("jobstream_open_streams", {"transport": "ws"}) == 0
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("wendy")) as c:
        await c.post(f"/api/v1/jobs/{job['id']}/cancel")


async def test_ws_007_many_clients_receive_the_identical_sequence(server: ServerProcess) -> None:
    job = await submit(server, "pdf", {"pages": 2})

    async def follow() -> list[dict]:
        async with connect(ws_url(server, f"/ws/jobs/{job['id']}", after_seq=0)) as ws:
            return await messages_until_close(ws)

    results = await asyncio.gather(*(follow() for _ in range(20)))
    assert results[0][-1]["type"] == "completed"
    assert all(r == results[0] for r in results)


async def test_ws_008_invalid_job_id_is_refused_with_4404(server: ServerProcess) -> None:
    other = await submit(server, "character", {}, user="someone-else")
    for job_id in ("no-such-job", other["id"]):
        async with connect(ws_url(server, f"/ws/jobs/{job_id}")) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 4404
        assert "not found" in (ws.close_reason or "")


async def test_missing_or_bad_token_is_refused_with_4401(server: ServerProcess) -> None:
    for url in (
        f"ws://127.0.0.1:{server.port}/ws/jobs",
        f"ws://127.0.0.1:{server.port}/ws/jobs?token=nonsense",
    ):
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 4401 and ws.close_reason


async def test_all_jobs_socket_sees_new_jobs_and_stays_open(server: ServerProcess) -> None:
    async with connect(ws_url(server, "/ws/jobs", user="feeder")) as ws:
        job = await submit(server, "character", {}, user="feeder")
        seen = []
        async with asyncio.timeout(20):
            while not seen or seen[-1]["type"] != "completed":
                seen.append(json.loads(await ws.recv()))
        assert {m["job_id"] for m in seen} == {job["id"]}
        await ws.send(json.dumps({"type": "hello"}))
        await asyncio.sleep(0.3)
        assert ws.close_code is None  # stays open after a job ends


async def test_connection_cap_refuses_with_1013(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server({"JOBSTREAM_WS_MAX_CONNECTIONS": "3"}).start()
    url = ws_url(server, "/ws/jobs")
    held = [await connect(url) for _ in range(3)]
    try:
        started = time.monotonic()
        async with connect(url) as extra:
            with pytest.raises(ConnectionClosed):
                await extra.recv()
        assert extra.close_code == 1013 and "3" in (extra.close_reason or "")
        assert time.monotonic() - started < 3
        await held[0].close()
        async with connect(url) as replacement:  # a freed place is usable at once
            await asyncio.sleep(0.2)
            assert replacement.close_code is None
    finally:
        for ws in held:
            await ws.close()


async def test_resume_after_a_dropped_connection_loses_and_repeats_nothing(
    server: ServerProcess,
) -> None:
    job = await submit(server, "pdf", {"pages": 2})
    url = ws_url(server, f"/ws/jobs/{job['id']}", after_seq=0)
    first_part = []
    async with connect(url) as ws:
        while len(first_part) < 6:
            first_part.append(json.loads(await ws.recv()))
    last_seq = first_part[-1]["seq"]
    # Reconnect the way a client would: from the last seq it saw (query form) ...
    async with connect(ws_url(server, f"/ws/jobs/{job['id']}", after_seq=last_seq)) as ws:
        rest = await messages_until_close(ws)
    async with connect(url) as ws:
        whole = await messages_until_close(ws)
    assert first_part + rest == whole
    # Every event of the job but its log lines (seed 004 has no log message), in order.
    canonical = await canonical_log(server, job["id"])
    expected = [e["seq"] for e in canonical if e["type"] != "log"]
    assert sorted({m["seq"] for m in whole}) == expected


async def test_resume_message_replays_from_the_given_seq(server: ServerProcess) -> None:
    job = await submit(server, "forever", {"interval_ms": 30})
    async with connect(ws_url(server, f"/ws/jobs/{job['id']}", after_seq=0)) as ws:
        seen = [json.loads(await ws.recv()) for _ in range(5)]
    resume_from = seen[-1]["seq"]
    await asyncio.sleep(0.6)  # messages the client misses while away (10 a second)
    async with connect(ws_url(server, f"/ws/jobs/{job['id']}")) as ws:
        current = json.loads(await ws.recv())
        assert current["type"] == "progress" and current["seq"] > resume_from + 2
        await ws.send(json.dumps({"type": "resume", "after_seq": resume_from}))
        replayed = [json.loads(await ws.recv()) for _ in range(15)]
        async with httpx.AsyncClient(base_url=server.url, headers=bearer("wendy")) as c:
            await c.post(f"/api/v1/jobs/{job['id']}/cancel")
        tail = await messages_until_close(ws)
    seqs = [m["seq"] for m in replayed + tail]
    assert seqs[0] == resume_from + 1
    # Contiguous from there (a job's end is two messages with the terminal event's seq).
    distinct = sorted(set(seqs))
    assert distinct == list(range(resume_from + 1, distinct[-1] + 1))
    assert seqs == sorted(seqs)
    assert tail[-1]["type"] == "cancelled"


async def test_a_peer_that_does_not_answer_pings_is_dropped(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"JOBSTREAM_WS_PING_SECONDS": "0.5"}).start()
    sock = socket.create_connection(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/jobs?token={token('mute')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.settimeout(10)
    assert b"101" in sock.recv(4096).split(b"\r\n")[0]
    await asyncio.sleep(0.3)
    assert server.metric("jobstream_open_streams", {"transport": "ws"}) == 1
    # Never read, never answer: the server pings, waits, and drops the connection.
    started = time.monotonic()
    while server.metric("jobstream_open_streams", {"transport": "ws"}) != 0:
        assert time.monotonic() - started < 5, "a silent peer was not dropped"
        await asyncio.sleep(0.1)
    sock.close()


async def test_an_idle_connection_is_closed_after_the_idle_limit(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"JOBSTREAM_WS_IDLE_TIMEOUT_SECONDS": "1"}).start()
    async with connect(ws_url(server, "/ws/jobs")) as ws:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
        assert 0.9 < time.monotonic() - started < 4
    assert ws.close_code == 1000 and ws.close_reason == "idle timeout"


async def test_canonical_websocket_carries_the_canonical_envelopes(server: ServerProcess) -> None:
    job = await submit(server, "character", {})
    url = ws_url(server, f"/api/v1/jobs/{job['id']}/ws", after_seq=0)
    async with connect(url) as ws:
        received = await messages_until_close(ws)
    sse = await canonical_log(server, job["id"])
    assert received == sse
    assert received[-1]["type"] == "completed"
    async with connect(ws_url(server, "/api/v1/ws")) as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot" and isinstance(snapshot["data"]["items"], list)


SEED_STATUSES = {"queued", "processing", "completed", "failed", "cancelled"}


async def test_seed_004_announces_a_new_job_with_statuses_never_null(
    server: ServerProcess,
) -> None:
    """A new job's status_change carried old_status null; the seed's JobStatus type has no null."""
    async with connect(ws_url(server, "/ws/jobs", user="nadia")) as ws:
        job = await submit(server, "character", {}, user="nadia")
        received: list[dict] = []
        async with asyncio.timeout(30):
            while not received or received[-1]["type"] != "completed":
                message = json.loads(await ws.recv())
                if message["job_id"] == job["id"]:
                    received.append(message)
    first = received[0]
    assert first["type"] == "status_change" and first["seq"] == 1
    assert first["data"] == {"old_status": "queued", "new_status": "queued"}
    for message in received:
        if message["type"] == "status_change":
            assert {message["data"]["old_status"], message["data"]["new_status"]} <= SEED_STATUSES
        if message["type"] == "progress":
            data = message["data"]
            assert isinstance(data["current_step"], int) and isinstance(data["total_steps"], int)
            assert isinstance(data["step_name"], str)


async def test_batched_frames_carry_the_same_envelopes_as_one_per_frame(
    server: ServerProcess,
) -> None:
    """``?batch=1``: every frame is a JSON array; flattened, the stream is the unbatched one."""
    job = await submit(server, "pdf", {"pages": 2})
    path = f"/api/v1/jobs/{job['id']}/ws"
    async with connect(ws_url(server, path, after_seq=0, batch=1)) as ws:
        live = await messages_until_close(ws)  # live: the job runs meanwhile
    async with connect(ws_url(server, path, after_seq=0)) as ws:
        single = await messages_until_close(ws)
    async with connect(ws_url(server, path, after_seq=0, batch=1)) as ws:
        replayed = await messages_until_close(ws)  # the whole log from the store
    for frames in (live, replayed):
        assert frames and all(isinstance(frame, list) and frame for frame in frames)
        assert [envelope for frame in frames for envelope in frame] == single
    assert [e["seq"] for e in single] == list(range(1, single[-1]["seq"] + 1))
    assert single[-1]["type"] == "completed"
    # A catch-up comes in frames of up to 100 envelopes, not one per event.
    assert len(replayed) == -(-len(single) // 100) < len(single)


async def test_the_seed_004_profile_keeps_one_message_per_frame_and_a_bad_batch_is_refused(
    server: ServerProcess,
) -> None:
    job = await submit(server, "pdf", {"pages": 2})
    async with connect(ws_url(server, f"/ws/jobs/{job['id']}", after_seq=0, batch=1)) as ws:
        messages = await messages_until_close(ws)
    assert messages and all(isinstance(m, dict) for m in messages)
    async with connect(ws_url(server, f"/api/v1/jobs/{job['id']}/ws", batch="maybe")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "batch must be 1 or 0" in closed.value.rcvd.reason
