"""A real nginx running ``deploy/nginx.conf`` in front of two instances on one PostgreSQL
database and one Redis bus (each test on its own database and key prefix): SSE arrives
unbuffered, WebSocket upgrades, and when the instance that held a stream is killed, the client's
reconnect through nginx lands on the other and resumes without a gap.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from nginxproc import NginxProcess
from redisdb import REDIS_URL
from serverproc import ServerProcess, bearer, token
from ssehelp import SSEReader, collect


@pytest.fixture
def two_behind_nginx(
    make_server: Callable[..., ServerProcess], database: str, prefix: str, tmp_path: Path
) -> tuple[list[ServerProcess], NginxProcess]:
    env = {
        "JOBSTREAM_STORE_URL": database,
        "JOBSTREAM_BUS_URL": REDIS_URL,
        "JOBSTREAM_REDIS_PREFIX": prefix,
        "JOBSTREAM_LEASE_SECONDS": "4",
    }
    shared = tmp_path / "shared"
    servers = [make_server(env, data_dir=shared).start() for _ in range(2)]
    proxy = NginxProcess(tmp_path / "nginx", [s.port for s in servers]).start()
    yield servers, proxy
    proxy.stop()


async def test_sse_through_nginx_arrives_before_the_job_ends(
    two_behind_nginx: tuple[list[ServerProcess], NginxProcess],
) -> None:
    _, proxy = two_behind_nginx
    async with httpx.AsyncClient(base_url=proxy.url, headers=bearer("px"), timeout=30) as c:
        params = {"count": 40, "interval_ms": 100}  # four seconds of reports
        job = (await c.post("/api/v1/jobs", json={"kind": "flood", "params": params})).json()
        started = time.monotonic()
        async with c.stream("GET", f"/api/v1/jobs/{job['id']}/events") as r:
            reader = SSEReader(r)
            arrivals = []
            while len(arrivals) < 5:
                event = await reader.next()
                assert event is not None
                arrivals.append((time.monotonic() - started, event.event))
        state = (await c.get(f"/api/v1/jobs/{job['id']}")).json()
    assert state["status"] == "running", "the events came only once the job was over"
    assert arrivals[1][0] < 2.0, arrivals


async def test_websocket_through_nginx(
    two_behind_nginx: tuple[list[ServerProcess], NginxProcess],
) -> None:
    _, proxy = two_behind_nginx
    async with httpx.AsyncClient(base_url=proxy.url, headers=bearer("px"), timeout=30) as c:
        job = (await c.post("/api/v1/jobs", json={"kind": "character", "params": {}})).json()
    url = f"ws://127.0.0.1:{proxy.port}/api/v1/jobs/{job['id']}/ws?after_seq=0&token={token('px')}"
    got: list[dict[str, Any]] = []
    async with connect(url) as ws:
        async with asyncio.timeout(30):
            while not got or got[-1]["type"] not in ("completed", "failed"):
                got.append(json.loads(await ws.recv()))
    assert got[-1]["type"] == "completed"
    assert [m["seq"] for m in got] == list(range(1, len(got) + 1))


async def test_killing_the_instance_behind_a_stream_resumes_through_nginx_without_a_gap(
    two_behind_nginx: tuple[list[ServerProcess], NginxProcess],
) -> None:
    servers, proxy = two_behind_nginx
    received: list[dict[str, Any]] = []
    last: str | None = "0"
    reconnects = 0
    async with httpx.AsyncClient(base_url=proxy.url, headers=bearer("px"), timeout=30) as c:
        params = {"count": 150, "interval_ms": 40}
        job = (await c.post("/api/v1/jobs", json={"kind": "flood", "params": params})).json()
        killed = False
        async with asyncio.timeout(90):
            while not received or received[-1]["type"] not in ("completed", "failed", "cancelled"):
                try:
                    headers = {"Last-Event-ID": last} if last is not None else {}
                    async with c.stream(
                        "GET", f"/api/v1/jobs/{job['id']}/events", headers=headers
                    ) as r:
                        assert r.status_code == 200, await r.aread()
                        reader = SSEReader(r)
                        while (event := await reader.next()) is not None:
                            if event.event == "snapshot":
                                continue
                            received.append(event.json)
                            last = event.id
                            if not killed and len(received) >= 20:
                                holder = next(
                                    s
                                    for s in servers
                                    if s.metric("jobstream_open_streams", {"transport": "sse"})
                                )
                                holder.kill()  # SIGKILL the instance that holds this stream
                                killed = True
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    pass
                reconnects += 1
        log = [e.json for e in await collect(c, f"/api/v1/jobs/{job['id']}/events?last_event_id=0")]
    assert killed and reconnects >= 2
    assert received == log  # nothing missing, nothing twice, nothing different
    assert received[-1]["type"] == "completed"
