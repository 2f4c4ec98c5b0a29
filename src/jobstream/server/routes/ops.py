"""Operations: liveness, readiness (the store and the bus answer) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from jobstream.server.deps import RuntimeDep

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the store and the bus answer")
async def readyz(rt: RuntimeDep) -> Response:
    problems = {}
    for name, check in (("store", rt.store.ping), ("bus", rt.bus.ping)):
        try:
            await asyncio.wait_for(check(), timeout=2.0)
        except Exception as exc:
            problems[name] = f"{type(exc).__name__}: {exc}"
    if rt.hub.shutting_down:
        problems["server"] = "shutting down"
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(rt: RuntimeDep) -> Response:
    rt.metrics.subscriptions.set(rt.bus.subscriber_count)
    rt.metrics.backlog_max.set(rt.hub.largest_backlog)
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4")


__all__ = ["router"]
