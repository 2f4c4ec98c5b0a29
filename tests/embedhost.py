"""A host application that embeds jobstream, as the README shows: its own routes, its own job
kind, and jobstream mounted under ``/progress`` with its lifespan run by the host's.

    uvicorn embedhost:app --port 8000    (with tests/ on PYTHONPATH)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

import jobstream
from jobstream import JobContext, Registry, Settings, create_app

registry = Registry()


class Resize(BaseModel):
    images: list[str]


@registry.register("resize", params=Resize)
async def resize(ctx: JobContext, params: Resize) -> dict[str, Any]:
    """Resize images (pretend), one progress report per image."""
    for _path in ctx.tqdm(params.images, desc="resizing"):
        await ctx.sleep(0.05)
    out = ctx.artifact_path("report.txt")
    out.write_text(f"resized {len(params.images)} images\n")
    ctx.set_artifact(out, "text/plain")
    return {"resized": len(params.images)}


progress = create_app(Settings(demo_jobs=False), registry=registry)
started: list[str] = []


@asynccontextmanager
async def host_lifespan(app: FastAPI) -> AsyncIterator[None]:
    started.append("host")
    yield


app = FastAPI(lifespan=jobstream.lifespan(progress, host_lifespan))
app.mount("/progress", progress)


@app.get("/")
async def home() -> dict[str, Any]:
    return {"app": "host", "lifespans": started}


@app.post("/orders/{order}/thumbnails")
async def thumbnails(order: str) -> dict[str, Any]:
    """A host route that starts a jobstream job and hands back where to watch it."""
    runtime = progress.state.jobstream
    local = runtime.auth.authenticate(authorization=None, query={}, cookies={})
    job = await runtime.jobs.submit(
        local, "resize", {"images": [f"{order}-{i}.png" for i in range(3)]}
    )
    return {"job_id": job.id, "watch": f"/progress/api/v1/jobs/{job.id}/events"}
