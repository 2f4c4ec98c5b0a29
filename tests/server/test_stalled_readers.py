"""A reader that stops reading is dropped: a send to it may block only so long, and while it
blocks the backlog bound and the stream time limit still apply (issue: a stalled reader was
held open at 320 s with a 120 s limit, its backlog at the bound since 150 s).

Each test opens a stream on a real socket with a small receive buffer, then never reads.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from serverproc import ServerProcess, bearer, token

FLOOD = {"count": 1_000_000, "interval_ms": 1, "pad": 4000}


def stalled_socket(server: ServerProcess, request: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(request.encode())
    return sock


def sse_request(path: str, user: str) -> str:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token(user)}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    )


def ws_request(path: str, user: str) -> str:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path}?token={token(user)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def closed_by_server(sock: socket.socket, within: float = 30.0) -> bool:
    """Read what the server sent until it closed the connection (EOF or a reset)."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(1 << 20):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


async def dropped(server: ServerProcess, transport: str, reason: str, within: float) -> float:
    """Seconds until the server counted one stalled reader dropped for ``reason``."""
    started = time.monotonic()
    labels = {"reason": reason, "transport": transport}
    while time.monotonic() - started < within:
        if server.metric("jobstream_stalled_disconnects_total", labels) >= 1:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"the stalled {transport} reader was not dropped ({reason}) in {within}s")


async def start_job(server: ServerProcess, user: str, kind: str = "flood") -> str:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(user), timeout=30) as c:
        response = await c.post("/api/v1/jobs", json={"kind": kind, "params": FLOOD})
        assert response.status_code == 202, response.text
        return str(response.json()["id"])


async def cancel(server: ServerProcess, user: str, job_id: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(user), timeout=30) as c:
        await c.post(f"/api/v1/jobs/{job_id}/cancel")


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_a_reader_that_stops_reading_is_dropped_after_the_send_timeout(
    make_server: Callable[..., ServerProcess], transport: str
) -> None:
    server = make_server({"JOBSTREAM_STREAM_SEND_TIMEOUT_SECONDS": "2"}).start()
    job_id = await start_job(server, "stall")
    path = f"/api/v1/jobs/{job_id}/{'events' if transport == 'sse' else 'ws'}"
    request = sse_request(path, "stall") if transport == "sse" else ws_request(path, "stall")
    sock = stalled_socket(server, request)
    try:
        took = await dropped(server, transport, "send_timeout", within=30)
        assert took >= 1.5  # not before the send had blocked for its time
        assert server.metric("jobstream_open_streams", {"transport": transport}) == 0
        assert await asyncio.to_thread(closed_by_server, sock)
    finally:
        sock.close()
        await cancel(server, "stall", job_id)


async def test_the_time_limit_holds_while_a_send_blocks(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server(
        {"JOBSTREAM_STREAM_SEND_TIMEOUT_SECONDS": "120", "JOBSTREAM_STREAM_TIMEOUT_SECONDS": "3"}
    ).start()
    job_id = await start_job(server, "late")
    sock = stalled_socket(server, sse_request(f"/api/v1/jobs/{job_id}/events", "late"))
    try:
        took = await dropped(server, "sse", "time_limit", within=30)
        assert took < 15
        assert await asyncio.to_thread(closed_by_server, sock)
    finally:
        sock.close()
        await cancel(server, "late", job_id)


async def test_the_backlog_bound_holds_while_a_send_blocks(
    make_server: Callable[..., ServerProcess],
) -> None:
    """Log lines are never coalesced: a blocked reader's backlog of them reaches the hard bound,
    and the reader is dropped then, not after the send timeout."""
    server = make_server(
        {
            "JOBSTREAM_STREAM_SEND_TIMEOUT_SECONDS": "120",
            "JOBSTREAM_STREAM_BACKLOG_SOFT": "8",
            "JOBSTREAM_STREAM_BACKLOG_HARD": "64",
        }
    ).start()
    job_id = await start_job(server, "bulky", kind="logflood")
    sock = stalled_socket(server, sse_request(f"/api/v1/jobs/{job_id}/events", "bulky"))
    try:
        took = await dropped(server, "sse", "overflow", within=30)
        assert took < 15
        assert await asyncio.to_thread(closed_by_server, sock)
    finally:
        sock.close()
        await cancel(server, "bulky", job_id)
