"""External workers over HTTP: claim a job of an external kind, then report its progress, log
lines and end (``worker/external.py``; the protocol: docs/external-workers.md).

Both routes need a token whose ``roles`` hold ``reporter`` (or ``admin``; every caller is the
local admin with auth ``none``). Report bodies are validated strictly (no ``"3"`` for a number,
no unknown field), each ``type`` with its own ``data`` model, so a 422 names what to fix.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from jobstream import codec
from jobstream.server.auth import Forbidden, Principal
from jobstream.server.deps import RuntimeDep, authorize
from jobstream.server.links import API, LinksDep
from jobstream.server.routes.jobs import json_response
from jobstream.service import InvalidParams, unencodable_text

router = APIRouter(prefix=API, tags=["external workers"])

LEASE = Field(
    min_length=1, max_length=200, description="The lease the claim answered with", repr=False
)
MAX_TEXT = 10_000


async def reporter_user(request: Request) -> Principal:
    principal = await authorize(request, reporter=True)
    if not (principal.admin or "reporter" in principal.roles):
        raise Forbidden(
            "claiming and reporting jobs need a token whose 'roles' claim holds 'reporter'"
        )
    return principal


ReporterDep = Annotated[Principal, Depends(reporter_user)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ClaimRequest(_Strict):
    kinds: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=100, description="External kinds this worker runs"
    )
    wait: float = Field(
        default=0.0,
        ge=0,
        le=60,
        allow_inf_nan=False,
        description="Seconds to wait for a job when none is queued (at most 60)",
    )


class ClaimAnswer(BaseModel):
    job: dict[str, Any] = Field(description="The job object, now running")
    lease: str = Field(description="Opaque: send it with every report of this job")
    lease_seconds: float = Field(
        description="Report (or heartbeat) within this many seconds, or the job is re-queued"
    )


class ProgressData(_Strict):
    progress: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    current_step: int | None = Field(default=None, ge=0, le=1_000_000)
    total_steps: int | None = Field(default=None, ge=1, le=1_000_000)
    step_name: str | None = Field(default=None, max_length=500)
    state: str | None = Field(default=None, min_length=1, max_length=100)
    message: str | None = Field(default=None, max_length=MAX_TEXT)
    eta_seconds: float | None = Field(
        default=None,
        ge=0,
        le=10**9,
        allow_inf_nan=False,
        description="The worker's own estimate; without it the server computes one",
    )

    @model_validator(mode="after")
    def _step_within_total(self) -> ProgressData:
        if (
            self.current_step is not None
            and self.total_steps is not None
            and self.current_step > self.total_steps
        ):
            raise ValueError(
                f"current_step ({self.current_step}) is past total_steps ({self.total_steps})"
            )
        if self.state == "stalled":
            raise ValueError("state 'stalled' is the server's to set (a worker gone quiet)")
        return self


class LogData(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str = Field(min_length=1, max_length=MAX_TEXT)
    step: int | None = Field(default=None, ge=0, le=1_000_000)


class CompletedData(_Strict):
    result: JsonValue = Field(default=None, description="Any JSON: the job's result")


class FailedData(_Strict):
    message: str = Field(min_length=1, max_length=MAX_TEXT, description="Why the job failed")


class HeartbeatData(_Strict):
    pass


class ProgressReport(_Strict):
    lease: str = LEASE
    type: Literal["progress"]
    data: ProgressData = Field(default_factory=ProgressData)


class LogReport(_Strict):
    lease: str = LEASE
    type: Literal["log"]
    data: LogData


class CompletedReport(_Strict):
    lease: str = LEASE
    type: Literal["completed"]
    data: CompletedData = Field(default_factory=CompletedData)


class FailedReport(_Strict):
    lease: str = LEASE
    type: Literal["failed"]
    data: FailedData


class HeartbeatReport(_Strict):
    lease: str = LEASE
    type: Literal["heartbeat"]
    data: HeartbeatData = Field(default_factory=HeartbeatData)


Report = Annotated[
    ProgressReport | LogReport | CompletedReport | FailedReport | HeartbeatReport,
    Field(discriminator="type"),
]


class ReportAnswer(BaseModel):
    seq: int = Field(description="The seq the server gave the event (heartbeat: the job's seq)")


class ErrorAnswer(BaseModel):
    detail: Any


class LeaseLostAnswer(BaseModel):
    detail: str
    job_status: str = Field(description="The job's status now (cancelled: a user cancelled it)")


@router.post(
    "/workers/claim",
    summary="An external worker's next job (long-poll), with its lease",
    response_model=ClaimAnswer,
    responses={
        204: {"description": "No job of those kinds was queued within `wait` seconds"},
        403: {"model": ErrorAnswer, "description": "The token's roles do not hold `reporter`"},
        422: {"model": ErrorAnswer, "description": "A kind is not external, or a bad body"},
    },
)
async def claim(
    body: ClaimRequest, request: Request, rt: RuntimeDep, worker: ReporterDep, links: LinksDep
) -> Response:
    wait = min(body.wait, rt.settings.max_wait_seconds)
    claimed = await rt.external.claim(worker.sub, body.kinds, wait, request.is_disconnected)
    if claimed is None:
        return Response(status_code=204)
    job, lease = claimed
    return json_response(
        {"job": links.public_job(job), "lease": lease, "lease_seconds": rt.settings.lease_seconds}
    )


@router.post(
    "/jobs/{job_id}/events",
    status_code=202,
    summary="An external worker's report: progress, log, completed, failed or heartbeat",
    response_model=ReportAnswer,
    responses={
        403: {"model": ErrorAnswer, "description": "The token's roles do not hold `reporter`"},
        404: {"model": ErrorAnswer, "description": "No such job"},
        409: {
            "model": LeaseLostAnswer,
            "description": "The lease does not hold the job (expired, foreign, taken over, or "
            "the job ended or was cancelled): nothing was written; stop working on it",
        },
        422: {"model": ErrorAnswer, "description": "A bad type or data: the detail says what"},
    },
)
async def report(
    job_id: str, body: Annotated[Report, Body()], rt: RuntimeDep, worker: ReporterDep
) -> Response:
    data = body.data.model_dump(mode="json", exclude_unset=True)
    try:
        codec.dumps(data)
        body.lease.encode()
    except (TypeError, UnicodeEncodeError):  # a lone surrogate: the store could not keep it
        raise InvalidParams([unencodable_text(["body"])]) from None
    seq = await rt.external.report(worker.sub, job_id, body.lease, body.type, data)
    return json_response({"seq": seq}, 202)


__all__ = ["ClaimAnswer", "ClaimRequest", "Report", "ReportAnswer", "reporter_user", "router"]
