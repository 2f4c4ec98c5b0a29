"""An async Python client: submit, read, cancel, and follow a job's events with resume.

``follow`` reconnects after a dropped connection with the last ``seq`` it saw as
``Last-Event-ID``, so the caller gets every event exactly once, then stops after the terminal
event (or the snapshot of a job that had already finished).
"""

from __future__ import annotations

import asyncio
import os
import socket
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


class ServerUnreachable(ClientError):
    """No answer from the server: nothing listens there, the name does not resolve, or the
    connection failed or timed out. ``reason`` says which, in a few words."""

    def __init__(self, url: str, reason: str) -> None:
        Exception.__init__(self, f"cannot reach {url} ({reason})")
        self.status = 0
        self.detail = reason
        self.url = url
        self.reason = reason


def transport_reason(exc: httpx.TransportError) -> str:
    """``connection refused``, ``timed out``, ``name or service not known``, …"""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror) and cause.strerror:
            return cause.strerror.lower()  # "name or service not known"
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()  # "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


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
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> JobstreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` as the server hands it out (a job's ``links``, which
        carry the server's mount prefix): ``http://host:8000/api/v1/jobs/…/result``."""
        return str(httpx.URL(self.base_url).join(path))

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer; ``ClientError`` for an error status or an answer that is
        not JSON, ``ServerUnreachable`` when no answer comes."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, transport_reason(exc)) from None
        return self._json(response)

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except (ValueError, AttributeError):
                detail = response.text
            raise ClientError(response.status_code, detail)
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                response.status_code,
                f"the answer from {response.request.url} is not JSON: "
                f"is {self.base_url} a jobstream server?",
            ) from None

    async def submit(self, kind: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        job: dict[str, Any] = await self._request(
            "POST", "/api/v1/jobs", json={"kind": kind, "params": params or {}}
        )
        return job

    async def get(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = await self._request("GET", f"/api/v1/jobs/{job_id}")
        return job

    async def list(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        page: dict[str, Any] = await self._request("GET", "/api/v1/jobs", params=params)
        return page

    async def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = await self._request("POST", f"/api/v1/jobs/{job_id}/cancel")
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
                        self._json(source.response)
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
                raise ServerUnreachable(
                    self.base_url, f"lost the stream of job {job_id} {failures} times in a row"
                )
            await asyncio.sleep(min(retry_delay * failures, 5.0))
