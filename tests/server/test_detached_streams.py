"""A stream's body runs outside the routing stack (``streams/connection.py``), and only where
nothing between sees body messages: what a middleware is owed still reaches it.

In-process uvicorn servers (a plugin's middleware is code, not a setting), real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobstream import Registry, Settings, create_app
from jobstream.server.runtime import Runtime
from serverproc import free_port
from testkinds import register


class CountBodies:
    """A user's middleware that wraps ``send``: it must see every body message of a stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.bodies.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counted)


async def serve(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # up to 10 s
        if server.started:
            break
        await asyncio.sleep(0.02)
    else:
        raise RuntimeError("the server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(auth="none", demo_jobs=False, data_dir=tmp_path, **extra)


def registry() -> Registry:
    reg = Registry()
    register(reg)
    return reg


async def stream_to_the_end(url: str, **headers: str) -> tuple[httpx.Headers, str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        job = (await client.post("/api/v1/jobs", json={"kind": "forever", "params": {}})).json()
        await client.post(f"/api/v1/jobs/{job['id']}/cancel")
        path = f"/api/v1/jobs/{job['id']}/events?last_event_id=0"  # the whole log
        async with client.stream("GET", path, headers=headers) as r:
            assert r.status_code == 200
            text = "".join([chunk async for chunk in r.aiter_text()])
            return r.headers, text


async def test_a_middleware_that_wraps_send_sees_every_body_message(tmp_path: Path) -> None:
    counter: list[CountBodies] = []

    def plugin(app: FastAPI, runtime: Runtime) -> None:
        app.add_middleware(CountBodies)

    app = create_app(settings(tmp_path), registry=registry(), plugins=[plugin])
    async for url in serve(app):
        _, text = await stream_to_the_end(url)
        stack: Any = app.middleware_stack
        while stack is not None and not isinstance(stack, CountBodies):
            stack = getattr(stack, "app", None)
        assert isinstance(stack, CountBodies)
        counter.append(stack)
    assert "event: cancelled" in text
    seen = b"".join(counter[0].bodies).decode()
    # Every byte the client read went through the middleware, the stream's last message too.
    assert "event: cancelled" in seen and text in seen
    assert counter[0].bodies[-1] == b""


@pytest.mark.parametrize("origin", ["http://app.example"])
async def test_a_detached_stream_keeps_what_middleware_put_in_its_response_start(
    tmp_path: Path, origin: str
) -> None:
    app = create_app(settings(tmp_path, allowed_origins=[origin]), registry=registry())
    async for url in serve(app):
        headers, text = await stream_to_the_end(url, origin=origin)
    assert headers["access-control-allow-origin"] == origin
    assert headers["content-type"].startswith("text/event-stream")
    assert "id: 1\n" in text and "event: cancelled" in text
