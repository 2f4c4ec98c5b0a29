"""``JobService``: the operations every route (canonical or profile) shares.

Submit, read, list and cancel, with ownership checks in one place: a job the caller may not
see answers exactly as a missing one.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from jobstream import codec
from jobstream.bus.base import EventBus
from jobstream.limits import Limits, MemoryLimits
from jobstream.models import Event, EventType, Job, JobStatus, isoformat, new_job_id, utcnow
from jobstream.server.auth import Principal
from jobstream.store.base import InsufficientCredits, JobPage, JobStore
from jobstream.worker.leases import terminal_event
from jobstream.worker.observer import NO_OBSERVER, JobObserver
from jobstream.worker.registry import Registry, UnknownKind

log = logging.getLogger(__name__)

QUEUED_CONTROL = "queued"
"""The control message saying a job of an external kind was queued (by submit or recovery)."""


def queued_message(kind: str) -> dict[str, Any]:
    return {"type": QUEUED_CONTROL, "kind": kind}


def unencodable_text(loc: list[str | int]) -> dict[str, Any]:
    """The 422 error for text that is not valid Unicode (a lone surrogate escape)."""
    return {
        "loc": loc,
        "msg": "text must be valid Unicode: a lone surrogate escape such as \\ud800 cannot be "
        "stored",
        "type": "unicode_error",
    }


class JobNotFound(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found")
        self.job_id = job_id


class JobConflict(Exception):
    """The job's status does not allow this (409)."""


class InvalidParams(ValueError):
    """Params that do not fit the kind's model; ``errors`` are pydantic-style dicts."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid job params")
        self.errors = errors


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobService:
    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        registry: Registry,
        *,
        on_queued: Callable[[], None] | None = None,
        submit_rate_per_minute: int = 0,
        observer: JobObserver | None = None,
        limits: Limits | None = None,
        dispatch: Callable[[Job], Awaitable[None]] | None = None,
        revoke: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self._on_queued = on_queued
        self._rate = submit_rate_per_minute
        self._limits = limits or MemoryLimits()
        self._observer = observer or NO_OBSERVER
        self._dispatch = dispatch
        """Hands a stored, queued job to a task engine (Celery) that runs it."""
        self._revoke = revoke
        """Tells the task engine a queued job was cancelled (a courtesy: no worker can claim
        a job the store holds cancelled)."""

    # -- submit -------------------------------------------------------------------------------

    def validate(self, kind_name: str, params: Any) -> dict[str, Any]:
        try:
            kind = self.registry.get(kind_name)
        except UnknownKind as exc:
            raise InvalidParams(
                [{"loc": ["body", "kind"], "msg": str(exc), "type": "value_error"}]
            ) from None
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidParams(
                [
                    {
                        "loc": ["body", "params"],
                        "msg": "params must be a JSON object",
                        "type": "dict_type",
                    }
                ]
            )
        try:
            encoded = codec.dumps(params)
        except TypeError:  # a lone surrogate ("\ud800"): JSON may say it, UTF-8 cannot store it
            raise InvalidParams([unencodable_text(["body", "params"])]) from None
        try:
            # A JSON API refuses the wrong type (``true`` or ``"3"`` for a number) whatever the
            # kind's model says: validated as JSON, strictly.
            model = kind.params.model_validate_json(encoded, strict=True)
        except ValidationError as exc:
            raise InvalidParams(
                [
                    {
                        "loc": ["body", "params", *error["loc"]],
                        "msg": error["msg"],
                        "type": error["type"],
                    }
                    for error in exc.errors(include_url=False, include_context=False)
                ]
            ) from None
        dumped: dict[str, Any] = model.model_dump(mode="json")
        return dumped

    async def submit(self, principal: Principal, kind: str, params: Any) -> Job:
        """Validate, store (debiting the kind's cost: ``InsufficientCredits``) and announce."""
        clean = self.validate(kind, params)
        await self._check_rate(principal.sub)
        now = utcnow()
        job = Job(
            id=new_job_id(),
            kind=kind,
            owner=principal.sub,
            params=clean,
            created_at=now,
            updated_at=now,
            cost=self.registry.get(kind).cost,
        )
        event = Event(
            job_id=job.id,
            owner=job.owner,
            seq=1,
            type=EventType.STATUS_CHANGE,
            data={
                "old_status": None,
                "new_status": "queued",
                "kind": kind,
                "created_at": isoformat(job.created_at),
                # So that a job first seen on an all-jobs stream says what it is (the list
                # shows the prompt, name or file from its params).
                "params": clean,
            },
        )
        job = job.apply(event)
        await self.store.create(job, event)
        await self.bus.publish([event])
        self._observer.queued(job)
        if self.registry.is_external(kind):
            # Claims waiting for this kind, on every instance (worker/external.py).
            await self.bus.publish_control(queued_message(kind))
        elif self._on_queued is not None:
            self._on_queued()
        if self._dispatch is not None and not self.registry.is_external(kind):
            try:
                await self._dispatch(job)
            except Exception as exc:
                log.exception("sending job %s to its task engine failed", job.id)
                reason = f"Could not be queued: {type(exc).__name__}"
                failed = await self.store.transition(
                    job.id,
                    {JobStatus.QUEUED},
                    lambda current: terminal_event(current, EventType.FAILED, reason),
                )
                if failed is not None:
                    job, event = failed
                    await self.bus.publish([event])
        return job

    async def _check_rate(self, user: str) -> None:
        """A token bucket per user: ``submit_rate_per_minute`` with that much burst, counted
        across instances when the limits are shared."""
        if self._rate <= 0:
            return
        seconds = await self._limits.take_submit(user, self._rate)
        if seconds is not None:
            wait = int(seconds) + 1
            raise RateLimited(
                f"too many jobs submitted: at most {self._rate} a minute; retry in {wait} s", wait
            )

    # -- read ---------------------------------------------------------------------------------

    async def get_stored(
        self, principal: Principal, job_id: str, *, kind: str | None = None
    ) -> Job:
        """The stored job; ``JobNotFound`` if missing, not the caller's, or (with ``kind``) of
        another kind: a route that serves one kind answers for the others as for a missing job."""
        job = await self.store.get(job_id)
        if job is None or not principal.can_see(job) or (kind is not None and job.kind != kind):
            raise JobNotFound(job_id)
        return job

    async def get(self, principal: Principal, job_id: str, *, kind: str | None = None) -> Job:
        """The job as readers see it now (every event is stored before it is published)."""
        return await self.get_stored(principal, job_id, kind=kind)

    async def list(
        self,
        principal: Principal,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        return await self.store.list_jobs(
            owner=principal.owner_filter, status=status, kind=kind, limit=limit, cursor=cursor
        )

    async def recent(self, principal: Principal, limit: int = 100) -> builtins.list[Job]:
        """The caller's newest jobs: what an all-jobs stream opens with."""
        return (await self.list(principal, limit=limit)).items

    # -- cancel -------------------------------------------------------------------------------

    async def cancel(self, principal: Principal, job_id: str, *, kind: str | None = None) -> Job:
        """Cancel at once if queued; ask the worker if running; idempotent; 409 once finished."""
        job = await self.get_stored(principal, job_id, kind=kind)
        if job.status is JobStatus.QUEUED:
            moved = await self.store.transition(
                job_id,
                {JobStatus.QUEUED},
                lambda current: terminal_event(current, EventType.CANCELLED, "Cancelled by user"),
            )
            if moved is not None:
                after, event = moved
                await self.bus.publish([event])
                if self._revoke is not None:
                    try:
                        await self._revoke(job_id)
                    except Exception:
                        log.warning("revoking the task of job %s failed", job_id, exc_info=True)
                return after
            job = await self.get_stored(principal, job_id)
        if job.status is JobStatus.RUNNING and self.registry.is_external(job.kind):
            # No handler here to reach: the job ends now, and its worker's next report gets a
            # 409 saying so (docs/external-workers.md).
            moved = await self.store.transition(
                job_id,
                {JobStatus.RUNNING},
                lambda current: terminal_event(current, EventType.CANCELLED, "Cancelled by user"),
            )
            if moved is not None:
                after, event = moved
                await self.bus.publish([event])
                return after
            job = await self.get_stored(principal, job_id)
        if job.status is JobStatus.RUNNING:
            job = await self.store.request_cancel(job_id) or job
            await self.bus.publish_control({"type": "cancel", "job_id": job_id})
            return job
        if job.status is JobStatus.CANCELLED:
            return job
        raise JobConflict(f"job {job_id!r} already {job.status.value}; it cannot be cancelled")


__all__ = [
    "QUEUED_CONTROL",
    "InsufficientCredits",
    "InvalidParams",
    "JobConflict",
    "JobNotFound",
    "JobService",
    "RateLimited",
    "queued_message",
    "unencodable_text",
]
