"""External kinds in-process: declared in code, never claimed by the embedded pool, claimed and
reported through the API of an app built with ``create_app``, recovered by re-queueing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from jobstream import create_app, lifespan
from jobstream.models import JobStatus
from jobstream.server.runtime import Runtime, declare_external_kinds
from jobstream.settings import Settings
from jobstream.worker.context import JobContext
from jobstream.worker.registry import Registry


def registry() -> Registry:
    reg = Registry()

    @reg.register("local")
    async def local(ctx: JobContext, params: object) -> str:
        return "ran here"

    reg.add_external("scan", description="Scanned by the scanner service")
    return reg


def test_an_external_kind_takes_any_json_object_and_is_not_a_local_kind() -> None:
    reg = registry()
    assert reg.local_names() == ["local"] and reg.external_names() == ["scan"]
    assert reg.is_external("scan") and not reg.is_external("local")
    assert not reg.is_external("missing")
    params = {"url": "s3://x", "pages": [1, 2], "deep": {"a": None, "b": 1.5}}
    assert reg.get("scan").params.model_validate(params).model_dump() == params


def test_declaring_external_kinds_adds_them_once_and_refuses_a_local_kind() -> None:
    reg = registry()
    declare_external_kinds(reg, ["scan", "ocr"])
    assert reg.external_names() == ["ocr", "scan"]
    with pytest.raises(ValueError, match="runs inside jobstream"):
        declare_external_kinds(reg, ["local"])


async def test_the_embedded_pool_never_claims_an_external_job_and_a_worker_over_http_does(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, workers=2, lease_seconds=0.6, demo_jobs=False)
    app = create_app(settings, registry=registry(), store="memory://")
    runtime: Runtime = app.state.jobstream
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app)(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        local = (await client.post("/api/v1/jobs", json={"kind": "local"})).json()
        scan = await client.post("/api/v1/jobs", json={"kind": "scan", "params": {"p": [1]}})
        assert scan.status_code == 202 and scan.json()["params"] == {"p": [1]}
        job_id = scan.json()["id"]
        await asyncio.sleep(0.5)
        assert (await client.get(f"/api/v1/jobs/{local['id']}")).json()["status"] == "completed"
        assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "queued"
        kinds = {k["name"]: k for k in (await client.get("/api/v1/kinds")).json()}
        assert kinds["scan"]["external"] is True and kinds["local"]["external"] is False

        claim = await client.post("/api/v1/workers/claim", json={"kinds": ["scan"]})
        assert claim.status_code == 200  # auth none: the local admin may claim
        lease = claim.json()["lease"]
        assert claim.json()["lease_seconds"] == 0.6
        # Silent past its lease: re-queued by the pool's own lease watcher.
        async with asyncio.timeout(5):
            while (await runtime.store.get(job_id)).status is not JobStatus.QUEUED:  # type: ignore[union-attr]  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        late = await client.post(
            f"/api/v1/jobs/{job_id}/events", json={"lease": lease, "type": "heartbeat"}
        )
        assert late.status_code == 409 and late.json()["job_status"] == "queued"
        again = await client.post("/api/v1/workers/claim", json={"kinds": ["scan"]})
        lease = again.json()["lease"]
        done = await client.post(
            f"/api/v1/jobs/{job_id}/events",
            json={"lease": lease, "type": "completed", "data": {"result": [1, 2]}},
        )
        assert done.status_code == 202
        final = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        assert final["status"] == "completed" and final["result"] == [1, 2]


async def test_a_report_after_the_lease_ended_is_refused_before_any_watcher_recovers_the_job() -> (
    None
):
    """No watcher runs here: the job stays running with its lease expired, and the late report
    is still refused (409), writing nothing."""
    from jobstream.bus.memory import MemoryBus
    from jobstream.server.auth import Principal
    from jobstream.service import JobService
    from jobstream.store.memory import MemoryStore
    from jobstream.worker.external import ExternalWorkers, LeaseLost

    reg = registry()
    store, bus = MemoryStore(), MemoryBus()
    await store.start()
    await bus.start()
    external = ExternalWorkers(store=store, bus=bus, registry=reg, lease_seconds=0.2)
    external.start()
    try:
        job = await JobService(store, bus, reg).submit(Principal("alice"), "scan", {})
        claimed = await external.claim("scanner", ["scan"], wait=0)
        assert claimed is not None
        _, lease = claimed
        assert await external.report("scanner", job.id, lease, "progress", {"progress": 5.0}) == 3
        await asyncio.sleep(0.3)
        with pytest.raises(LeaseLost) as lost:
            await external.report("scanner", job.id, lease, "progress", {"progress": 9.0})
        assert lost.value.job_status is JobStatus.RUNNING
        after = await store.get(job.id)
        assert after is not None and after.seq == 3 and after.progress == 5.0
    finally:
        await external.stop()
        await bus.close()
        await store.close()
