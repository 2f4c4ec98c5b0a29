"""What routes get from the app: its parts (``Runtime``) and the caller (``Principal``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from jobstream.server.auth import Authenticator, Forbidden, Principal

if TYPE_CHECKING:
    from jobstream.bus.base import EventBus
    from jobstream.server.metrics import Metrics
    from jobstream.service import JobService
    from jobstream.settings import Settings
    from jobstream.store.base import JobStore
    from jobstream.streams.lifecycle import StreamHub
    from jobstream.worker.pool import WorkerPool
    from jobstream.worker.registry import Registry


@dataclass(slots=True)
class Runtime:
    settings: Settings
    store: JobStore
    bus: EventBus
    registry: Registry
    auth: Authenticator
    metrics: Metrics
    hub: StreamHub
    jobs: JobService
    pool: WorkerPool | None
    extras: dict[str, Any]


def runtime(conn: HTTPConnection) -> Runtime:
    rt: Runtime = conn.app.state.jobstream
    return rt


def authenticate(conn: HTTPConnection) -> Principal:
    """The caller, from a header, ``?token=``, ``?ticket=`` or the cookie; raises ``AuthError``."""
    return runtime(conn).auth.authenticate(
        authorization=conn.headers.get("authorization"),
        query=conn.query_params,
        cookies=conn.cookies,
    )


def current_user(request: Request) -> Principal:
    principal = authenticate(request)
    if principal.reporter_only:
        raise Forbidden("a reporter token may only report progress")
    return principal


RuntimeDep = Annotated[Runtime, Depends(runtime)]
UserDep = Annotated[Principal, Depends(current_user)]
