"""The baselines: jobstream's store and worker, streamed the way the seeds (and most tutorials) do.

Run as a script, it serves the whole jobstream app (same settings from ``JOBSTREAM_*``, same
embedded worker, same SQLite store, same ``bench`` kind) plus two routes written the plain way:

``GET /baseline/poll/{job_id}`` -- seed 000 as its design note describes it: a
    ``StreamingResponse`` whose loop re-reads the job from the store every 0.5 s and sends
    ``event: progress`` when its state changed, then ``event: status`` and closes when it ends.
    Every stream polls the store on its own; the JSON is encoded per stream (stdlib ``json``).

``GET /baseline/queue/{job_id}`` -- the usual FastAPI push stream: an ``asyncio.Queue`` per
    subscriber fed by the bus, a ``StreamingResponse`` over an async generator that encodes
    each event for each stream. Unbounded, one ``send`` per event. Used for the idle-memory
    comparison ("plain StreamingResponse") and as an optional third fan-out mode.

    python benchmarks/baseline_server.py --port 8001 --data-dir /tmp/base

Under another ASGI server, ``create_baseline_app`` is the factory (settings from ``JOBSTREAM_*``):
``granian --interface asgi --factory baseline_server:create_baseline_app``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse

from jobstream.bus.subscriber import Subscriber
from jobstream.models import Event, Job
from jobstream.server.app import create_app
from jobstream.server.deps import Runtime
from jobstream.settings import Settings

POLL_SECONDS = 0.5
TERMINAL = {"completed", "failed", "cancelled"}


def seed_state(job: Job) -> dict[str, Any]:
    """Seed 000's progress payload."""
    return {
        "status": job.status.value,
        "progress": float(job.progress),
        "progress_info": job.message or job.step_name or "",
        "current_step": job.current_step,
        "total_steps": job.total_steps,
    }


class QueueSubscriber(Subscriber):
    """A bus subscriber that puts every event on an unbounded ``asyncio.Queue``."""

    __slots__ = ("queue",)

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id=job_id)
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def push(self, event: Event) -> None:
        self.queue.put_nowait(event)


def add_baseline_routes(app: FastAPI, rt: Runtime) -> None:
    store = rt.store

    @app.get("/baseline/poll/{job_id}")
    async def poll_stream(job_id: str) -> StreamingResponse:
        if await store.get(job_id) is None:
            raise HTTPException(404, "Job not found")

        async def events() -> AsyncIterator[str]:
            last: dict[str, Any] | None = None
            while True:
                job = await store.get(job_id)
                if job is None:
                    return
                if job.status.value in TERMINAL:
                    body = {"status": job.status.value, "message": job.error or job.message}
                    yield f"event: status\ndata: {json.dumps(body)}\n\n"
                    return
                state = seed_state(job)
                if state != last:
                    last = state
                    yield f"event: progress\ndata: {json.dumps(state)}\n\n"
                await asyncio.sleep(POLL_SECONDS)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.get("/baseline/queue/{job_id}")
    async def queue_stream(job_id: str) -> StreamingResponse:
        job = await store.get(job_id)
        if job is None:
            raise HTTPException(404, "Job not found")
        subscriber = QueueSubscriber(job_id)
        rt.bus.subscribe(subscriber)

        async def events() -> AsyncIterator[str]:
            try:
                yield f"event: snapshot\ndata: {json.dumps(seed_state(job))}\n\n"
                while True:
                    event = await subscriber.queue.get()
                    envelope = {
                        "type": event.type.value,
                        "job_id": event.job_id,
                        "seq": event.seq,
                        "data": event.data,
                    }
                    data = json.dumps(envelope)
                    yield f"id: {event.seq}\nevent: {event.type.value}\ndata: {data}\n\n"
                    if event.type.terminal:
                        return
            finally:
                rt.bus.unsubscribe(subscriber)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )


def create_baseline_app() -> FastAPI:
    """The jobstream app with the baseline routes, its settings from the environment."""
    return create_app(Settings(), plugins=[add_baseline_routes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--data-dir", default=".jobstream-baseline")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    settings = Settings(
        host=args.host, port=args.port, data_dir=args.data_dir, workers=args.workers
    )
    app = create_app(settings, plugins=[add_baseline_routes])
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
