"""The server's memory stays flat where it grew without a plateau, measured on a real server.

- WebSocket churn: ~2.8 KB per connect/disconnect, 40,000 cycles, every gauge at 0. Each
  connection's permessage-deflate state (~300 KB of zlib buffers) sat in reference cycles that
  the collector, with its older generations all but switched off, reached too late, and the
  heap fragmented; a cycle of the connection back to itself (through the scope) made it worse.
- A slow consumer of the all-jobs stream under 3-4 jobs/s: 0.5 MB/s, its backlog gauge at 0.
  The memory went to the bus's window of published events (up to 1,024 jobs x 128 events,
  each with its encoded frames), kept for readers to catch up from; every event is now
  stored before it is published, and the window is gone.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.asyncio.client import connect

from serverproc import ServerProcess, bearer, token

pytestmark = pytest.mark.slow
MB = 1_000_000


async def churn(url: str, cycles: int, at_once: int = 50) -> None:
    """Connect, take the first message, and drop the connection without a close handshake."""

    async def one() -> None:
        ws = await connect(url, compression="deflate")  # a browser offers it
        await ws.recv()
        ws.transport.abort()

    for _ in range(cycles // at_once):
        results = await asyncio.gather(*(one() for _ in range(at_once)), return_exceptions=True)
        assert not [r for r in results if isinstance(r, Exception)], results[:3]


@pytest.mark.timeout(400)
async def test_websocket_churn_leaves_memory_flat(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"JOBSTREAM_MAX_STREAMS_PER_USER": "1000"}).start()
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("churn"), timeout=30) as c:
        job = (await c.post("/api/v1/jobs", json={"kind": "character", "params": {}})).json()
    url = f"ws://127.0.0.1:{server.port}/api/v1/jobs/{job['id']}/ws?token={token('churn')}"
    await churn(url, 5_000)  # warm-up: pools, caches, the allocator's arenas
    before = server.rss_bytes()
    await churn(url, 20_000)
    grown = server.rss_bytes() - before
    assert server.metric("jobstream_open_streams", {"transport": "ws"}) == 0
    assert grown < 6 * MB, f"RSS grew {grown / MB:.1f} MB over 20,000 WebSocket cycles"


@pytest.mark.timeout(300)
async def test_a_slow_consumer_under_steady_jobs_leaves_memory_flat(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"JOBSTREAM_DEMO_SPEED": "10", "JOBSTREAM_WORKERS": "16"}).start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=4096)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    writer.write(
        f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token('slow')}"
        "\r\n\r\n".encode()
    )

    async def read_slowly() -> None:  # 2 KB every 100 ms
        while True:
            if not await reader.read(2048):
                return
            await asyncio.sleep(0.1)

    slow = asyncio.create_task(read_slowly())
    readings: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=bearer("slow"), timeout=30) as c:
            started = time.monotonic()
            for i in range(int(60 * 3.5)):  # 3.5 jobs/s for a minute
                response = await c.post(
                    "/api/v1/jobs", json={"kind": "pdf", "params": {"pages": 1}}
                )
                assert response.status_code == 202
                if i % 35 == 0:
                    readings.append(server.rss_bytes())
                await asyncio.sleep(max(0.0, started + (i + 1) / 3.5 - time.monotonic()))
    finally:
        slow.cancel()
        writer.close()
    grown = readings[-1] - readings[2]  # from 20 s on: after the warm-up
    assert grown < 4 * MB, f"RSS grew {grown / MB:.1f} MB in 40 s: {[r // MB for r in readings]}"
