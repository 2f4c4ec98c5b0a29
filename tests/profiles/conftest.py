"""A real server per profile test module, with the module's own ``SERVER_ENV``.

Each module picks the demo speed its sequences need: fast enough to keep the suite quick, slow
enough that a cancel lands mid-job and a late client really is late. The session ``server``
(speed 20) runs a character job in a quarter of a second, too fast for those paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from serverproc import ServerProcess


@pytest.fixture(scope="module")
def profile_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env: dict[str, str] = getattr(request.module, "SERVER_ENV", {})
    proc = ServerProcess(tmp_path_factory.mktemp("profile"), env).start()
    yield proc
    proc.stop()


JobCheck = Callable[[dict[str, Any]], bool]
WaitForJob = Callable[[httpx.AsyncClient, str, JobCheck], Awaitable[dict[str, Any]]]


@pytest.fixture
def wait_for_job() -> WaitForJob:
    """``await wait_for_job(client, job_id, check)``: the canonical job object once ``check``
    holds, following the job with the canonical long-poll (no sleeping between reads)."""

    async def wait(client: httpx.AsyncClient, job_id: str, check: JobCheck) -> dict[str, Any]:
        job: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        async with asyncio.timeout(15):
            while not check(job):
                assert job["status"] not in ("completed", "failed", "cancelled"), job
                url = f"/api/v1/jobs/{job_id}?wait=5&after_seq={job['seq']}"
                job = (await client.get(url)).json()
        return job

    return wait
