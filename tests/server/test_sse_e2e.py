"""The canonical SSE stream against a real server: a video job from submit to a valid MP4."""

from __future__ import annotations

import asyncio
import io
import json

import av
import httpx

from serverproc import ServerProcess, bearer, token
from ssehelp import TERMINAL, SSEReader, collect


async def test_video_job_streams_to_completed_and_resume_gets_exactly_the_missed_events(
    server: ServerProcess,
) -> None:
    headers = bearer("alice")
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        submitted = await client.post(
            "/api/v1/jobs", json={"kind": "video", "params": {"prompt": "a red fox at dusk"}}
        )
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        assert job["status"] == "queued" and job["links"]["events"].endswith("/events")

        async with client.stream("GET", job["links"]["events"]) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            reader = SSEReader(response)
            first = [await reader.next()]
            assert first[0] is not None and first[0].event == "snapshot"
            snapshot_seq = int(first[0].id or 0)
            # Read until a few step events are in, then open the second connection mid-job.
            while True:
                event = await reader.next()
                assert event is not None, "stream ended before the job did"
                first.append(event)
                if event.event == "progress" and event.json["data"]["current_step"] >= 3:
                    break
            k = int(first[-1].id or 0)
            second_task = asyncio.create_task(
                collect(client, job["links"]["events"], headers={"Last-Event-ID": str(k)})
            )
            first.extend(await reader.until_end())
        second = await second_task

        live = first[1:]
        assert live[-1].event == "completed"
        seqs = [int(e.id or 0) for e in live]
        # Gap-free, strictly increasing, starting right after the snapshot.
        assert seqs == list(range(snapshot_seq + 1, snapshot_seq + 1 + len(seqs)))
        for event in live:
            envelope = event.json
            assert envelope["type"] == event.event
            assert envelope["job_id"] == job["id"] and envelope["seq"] == int(event.id or 0)
            assert envelope["ts"].endswith("Z")
        # The resumed connection: exactly k+1 ... end, byte for byte the same events.
        assert [e.id for e in second] == [str(s) for s in range(k + 1, seqs[-1] + 1)]
        expected = [e for e in live if int(e.id or 0) > k]
        assert [(e.event, e.data) for e in second] == [(e.event, e.data) for e in expected]

        steps = [e.json["data"]["current_step"] for e in live if e.event == "progress"]
        assert steps == sorted(steps) and steps[-1] == 8
        completed = live[-1].json["data"]
        assert completed["output_path"] == f"/api/v1/jobs/{job['id']}/result"
        assert completed["elapsed_seconds"] > 0

        result = await client.get(completed["output_path"])
        assert result.status_code == 200
        assert result.headers["content-type"] == "video/mp4"
        with av.open(io.BytesIO(result.content)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = sum(1 for _ in container.decode(stream))
        assert frames > 10

        partial = await client.get(completed["output_path"], headers={"Range": "bytes=0-99"})
        assert partial.status_code == 206 and len(partial.content) == 100

        final = (await client.get(f"/api/v1/jobs/{job['id']}")).json()
        assert final["status"] == "completed" and final["state"] == "completed"
        assert final["progress"] == 100 and final["seq"] == seqs[-1]


async def test_finished_job_stream_sends_its_snapshot_then_closes(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("bob"), timeout=30) as client:
        job = (await client.post("/api/v1/jobs", json={"kind": "character", "params": {}})).json()
        events = await collect(client, f"/api/v1/jobs/{job['id']}/events")
        assert events[-1].event == "completed"
        again = await collect(client, f"/api/v1/jobs/{job['id']}/events")
        assert [e.event for e in again] == ["snapshot"]
        assert again[0].json["data"]["status"] == "completed"
        assert again[0].id == events[-1].id


async def test_resume_via_query_parameter_and_resume_at_the_end(server: ServerProcess) -> None:
    async with httpx.AsyncClient(
        base_url=server.url, headers=bearer("carol"), timeout=30
    ) as client:
        job = (await client.post("/api/v1/jobs", json={"kind": "character", "params": {}})).json()
        events = await collect(client, f"/api/v1/jobs/{job['id']}/events")
        last = int(events[-1].id or 0)
        replay = await collect(client, f"/api/v1/jobs/{job['id']}/events?last_event_id=1")
        assert [e.id for e in replay] == [str(s) for s in range(2, last + 1)]
        assert replay[-1].event in TERMINAL
        bad = await client.get(f"/api/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["detail"]


async def test_all_jobs_stream_starts_with_a_snapshot_and_follows_new_jobs(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("dave"), timeout=30) as client:
        async with client.stream("GET", "/api/v1/events") as response:
            reader = SSEReader(response)
            snapshot = await reader.next()
            assert snapshot is not None and snapshot.event == "snapshot"
            assert isinstance(snapshot.json["data"]["items"], list)
            job = (
                await client.post("/api/v1/jobs", json={"kind": "character", "params": {}})
            ).json()
            seen = []
            while True:
                event = await reader.next()
                assert event is not None
                seen.append(event)
                if event.event == "completed":
                    break
        assert all(e.json["job_id"] == job["id"] for e in seen)
        assert seen[0].event == "status_change" and seen[0].json["data"]["new_status"] == "queued"
        assert seen[0].json["data"]["kind"] == "character"
        cursors = [int(e.id or 0) for e in seen]
        assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)

        # Resuming the all-jobs stream from a cursor replays exactly what came after it.
        resume_from = cursors[2]
        async with client.stream(
            "GET", "/api/v1/events", headers={"Last-Event-ID": str(resume_from)}
        ) as response:
            reader = SSEReader(response)
            replayed = []
            while len(replayed) < len(seen) - 3:
                event = await reader.next()
                assert event is not None
                replayed.append(event)
        assert [json.loads(e.data) for e in replayed] == [json.loads(e.data) for e in seen[3:]]


async def test_sse_snapshot_is_the_same_canonical_envelope_as_the_websocket_one(
    server: ServerProcess,
) -> None:
    """It was the bare job object on SSE and an envelope on WebSocket (SPEC section 3)."""
    import websockets

    async with httpx.AsyncClient(base_url=server.url, headers=bearer("erin"), timeout=30) as client:
        job = (await client.post("/api/v1/jobs", json={"kind": "character", "params": {}})).json()
        await collect(client, f"/api/v1/jobs/{job['id']}/events")  # until it completed
        (snapshot,) = await collect(client, f"/api/v1/jobs/{job['id']}/events")
    url = f"ws://127.0.0.1:{server.port}/api/v1/jobs/{job['id']}/ws?token={token('erin')}"
    async with websockets.connect(url) as ws:
        message = json.loads(await ws.recv())
    envelope = snapshot.json
    assert snapshot.event == "snapshot" and snapshot.id == str(envelope["seq"])
    assert set(envelope) == {"type", "job_id", "seq", "ts", "data"}
    assert envelope["type"] == "snapshot" and envelope["job_id"] == job["id"]
    assert envelope["data"]["id"] == job["id"] and envelope["data"]["status"] == "completed"
    assert envelope["data"]["links"]["result"] == f"/api/v1/jobs/{job['id']}/result"
    assert message == envelope


async def test_a_completed_jobs_last_message_says_it_completed(server: ServerProcess) -> None:
    """A finished video kept "✅ Finalizing..." (its last step's line) as its message."""
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("erin"), timeout=60) as client:
        job = (
            await client.post("/api/v1/jobs", json={"kind": "video", "params": {"prompt": "a fox"}})
        ).json()
        events = await collect(client, f"/api/v1/jobs/{job['id']}/events")
        assert events[-1].event == "completed"
        assert events[-1].json["data"]["message"] == "Completed"
        final = (await client.get(f"/api/v1/jobs/{job['id']}")).json()
    assert final["message"] == "Completed"
