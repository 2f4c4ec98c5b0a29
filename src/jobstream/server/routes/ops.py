"""Operations: liveness, readiness (the store and the bus answer) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from jobstream.server.deps import RuntimeDep

router = APIRouter(tags=["ops"])
log = logging.getLogger(__name__)


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the store, the bus (and the Celery broker) answer")
async def readyz(rt: RuntimeDep) -> Response:
    problems = {}
    checks = [("store", rt.store.ping), ("bus", rt.bus.ping)]
    if "celery" in rt.extras:
        checks.append(("broker", rt.extras["celery"].ping))
    for name, check in checks:
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
    rt.hub.report_metrics()
    try:
        counts = await asyncio.wait_for(rt.store.count_by_status(), timeout=2.0)
    except Exception:
        # The store is down: the other metrics still answer; the job counts are left out.
        log.warning("metrics: counting jobs in the store failed", exc_info=True)
        rt.metrics.jobs.clear()
    else:
        rt.metrics.set_job_counts(counts, rt.registry.names())
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4")


__all__ = ["router"]
