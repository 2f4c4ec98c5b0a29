"""An async Python client: submit, read, cancel, and follow a job's events with resume.

``follow`` reconnects after a dropped connection with the last ``seq`` it saw as
``Last-Event-ID``, so the caller gets every event exactly once, then stops after the terminal
event (or the snapshot of a job that had already finished).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from jobstream import codec

TERMINAL = frozenset({"completed", "failed", "cancelled"})


class ClientError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(slots=True, frozen=True)
class StreamEvent:
    """One SSE event: ``event`` is its name, ``data`` the decoded JSON, ``id`` its SSE id."""

    event: str
    data: dict[str, Any]
    id: int | None

    @property
    def terminal(self) -> bool:
        if self.event == "snapshot":
            job = self.data.get("data", self.data)
            return isinstance(job, dict) and job.get("status") in TERMINAL
        return self.event in TERMINAL


class JobstreamClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> JobstreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise ClientError(response.status_code, detail)
        return response.json()

    async def submit(self, kind: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self._http.post(
            "/api/v1/jobs", json={"kind": kind, "params": params or {}}
        )
        job: dict[str, Any] = await self._json(response)
        return job

    async def get(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = await self._json(await self._http.get(f"/api/v1/jobs/{job_id}"))
        return job

    async def list(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        page: dict[str, Any] = await self._json(await self._http.get("/api/v1/jobs", params=params))
        return page

    async def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = await self._json(
            await self._http.post(f"/api/v1/jobs/{job_id}/cancel")
        )
        return job

    async def follow(
        self,
        job_id: str,
        *,
        last_event_id: int | None = None,
        max_retries: int = 20,
        retry_delay: float = 0.5,
    ) -> AsyncIterator[StreamEvent]:
        """Every event of the job from ``last_event_id`` on, across reconnects."""
        last = last_event_id
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(last)} if last is not None else {}
            try:
                async with aconnect_sse(
                    self._http,
                    "GET",
                    f"/api/v1/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=None),
                ) as source:
                    if source.response.status_code >= 400:
                        await source.response.aread()
                        await self._json(source.response)
                    async for sse in source.aiter_sse():
                        failures = 0
                        if not sse.data:
                            continue
                        event = StreamEvent(
                            sse.event, codec.loads(sse.data), int(sse.id) if sse.id else None
                        )
                        if event.id is not None and event.event != "timeout":
                            last = event.id
                        yield event
                        if event.terminal:
                            return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                pass
            failures += 1
            if failures > max_retries:
                raise ClientError(0, f"lost the stream of job {job_id} {failures} times in a row")
            await asyncio.sleep(min(retry_delay * failures, 5.0))
