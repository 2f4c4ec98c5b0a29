"""Seed 002: video generation with a live step log, credits and a signed video link.

- ``POST /api/v1/videos/generate`` ``{"prompt" (>= 10 characters), "model": "sora-2",
  "reference_image_url"}`` → the video record (``id`` is the job id). The ``video`` kind costs
  100 credits, debited atomically by the store at submit: too few → 402 with the balance and the
  cost. The credits come back if the job fails or is cancelled (the store does that too).
- ``GET /api/v1/videos/{id}/stream``, token in ``Authorization`` or ``?token=`` (the seed uses
  ``EventSource``): unnamed events, each one ``data:`` line, ``{"step": n, "message": "..."}``
  for the 8 steps (the video kind's ``log`` events, seed 002's exact messages), then
  ``{"step": 9, "message": "🎉 Video ready!", "video_url": "...", "status": "completed"}`` and
  the stream closes. A failure ends with ``{"status": "failed", "message"}``, a cancel with
  ``{"status": "cancelled", "message"}``.
- ``POST /api/v1/videos/{id}/cancel`` cancels (a running job stops at its next checkpoint: no
  step message follows); ``GET /api/v1/videos/{id}`` is the record; ``GET /api/v1/users/me`` is
  ``{"sub", "credits"}``.

The stream is a log: it starts from the job's first event (``after_seq=0``), so a client that
connects late first gets every step already taken, in order. Each event also has an ``id:`` line
(the job's ``seq``), so an ``EventSource`` that reconnects (after the stream time limit, say)
sends ``Last-Event-ID`` and continues where it was without repeating a step; reconnecting to a
finished log answers 204, which tells an ``EventSource`` to stop.

``video_url`` must load in a ``<video>`` tag, which sends no header: it is a relative, signed and
expiring link (HMAC-SHA256 over the video id and the expiry, keyed from the server's JWT secret,
or from the store URL when there is none, so every instance checks every link; lifetime
``JOBSTREAM_RESULT_LINK_SECONDS``)
to ``GET /api/v1/videos/{id}/video.mp4``, which checks it and serves the MP4 with Range support.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from jobstream import codec
from jobstream.jobs.video import TOTAL_STEPS, VideoModel
from jobstream.models import Event, EventType, Job, JobStatus, isoformat
from jobstream.server.auth import Forbidden
from jobstream.server.deps import RuntimeDep, StreamUserDep, UserDep
from jobstream.server.links import Links, LinksDep
from jobstream.server.routes.jobs import json_response, result_response
from jobstream.service import JobNotFound
from jobstream.settings import Settings
from jobstream.streams.positions import parse_last_event_id, parse_position
from jobstream.streams.sse import PING, SSEResponse, sse_frame

TAG = "profile 002: video studio"
KIND = "video"
VIDEOS = "/api/v1/videos"
READY_STEP = TOTAL_STEPS + 1
READY_MESSAGE = "🎉 Video ready!"
FRAME_CACHE = "profile-002"
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "A Server-Sent Events stream"},
    204: {"description": "The log is finished and the client already has all of it"},
}


class GenerateVideo(BaseModel):
    """A video to generate (seed 002's request). Other fields are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    prompt: str = Field(
        min_length=10, max_length=2000, description="What the video shows (at least 10 characters)."
    )
    model: VideoModel = Field(default="sora-2", description='The model: "sora-2" or "sora-2-pro".')
    reference_image_url: str | None = Field(
        default=None, max_length=2048, description="The reference image the video follows."
    )


class VideoLinks:
    """Signed, expiring links to a finished video, for clients that cannot send a header."""

    def __init__(self, key: bytes, lifetime_seconds: float) -> None:
        self._key = key
        self.lifetime = lifetime_seconds

    @classmethod
    def for_settings(cls, settings: Settings) -> VideoLinks:
        # A key of its own, derived from what every instance shares, so that any instance
        # checks a link another signed: the JWT secret; without one (auth "none", where every
        # caller is the local admin anyway) the store's URL.
        shared = settings.jwt_secret or settings.resolved_store_url
        key = hmac.new(shared.encode(), b"jobstream signed video links", hashlib.sha256).digest()
        return cls(key, settings.result_link_seconds)

    def _signature(self, video_id: str, expires: int) -> str:
        message = f"{video_id}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def url(self, video_id: str, links: Links, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.lifetime)
        signature = self._signature(video_id, expires)
        return links.url(f"{VIDEOS}/{video_id}/video.mp4?expires={expires}&signature={signature}")

    def check(self, video_id: str, expires: str | None, signature: str | None) -> None:
        """Raise ``Forbidden`` unless the link is this server's and has not expired
        (``BadRequest`` for an expiry that is not a number)."""
        if not expires or not signature:
            raise Forbidden("this link needs its 'expires' and 'signature' query parameters")
        when = parse_position(expires, "expires")
        assert when is not None
        # Bytes on both sides: compare_digest refuses a str with non-ASCII characters.
        expected = self._signature(video_id, when).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape")):
            raise Forbidden("this video link is not valid")
        if when < time.time():
            raise Forbidden("this video link has expired; fetch the video record for a new one")


async def video_links(rt: RuntimeDep) -> VideoLinks:
    """The server's signer of video links, made at its first use."""
    found = rt.extras.get("video_links")
    if not isinstance(found, VideoLinks):
        found = rt.extras["video_links"] = VideoLinks.for_settings(rt.settings)
    return found


VideoLinksDep = Annotated[VideoLinks, Depends(video_links)]


def video_record(job: Job, signer: VideoLinks, links: Links) -> dict[str, Any]:
    params = job.params
    return {
        "id": job.id,
        "status": job.status.value,
        "prompt": params.get("prompt"),
        "model": params.get("model"),
        "reference_image_url": params.get("reference_image_url"),
        "progress": round(float(job.progress), 2),
        "current_step": job.current_step,
        "total_steps": job.total_steps,
        "message": job.message,
        "error": job.error,
        "video_url": signer.url(job.id, links) if job.status is JobStatus.COMPLETED else None,
        "credits_cost": job.cost,
        "stream_url": links.url(f"{VIDEOS}/{job.id}/stream"),
        "created_at": isoformat(job.created_at),
        "updated_at": isoformat(job.updated_at),
        "finished_at": isoformat(job.finished_at),
    }


def _message(body: dict[str, Any], seq: int) -> bytes:
    return sse_frame(codec.dumps(body), id=seq)


def _step_message(event: Event) -> bytes | None:
    step = event.data.get("step")
    if not isinstance(step, int):
        return None
    return _message({"step": step, "message": event.data.get("message")}, event.seq)


def _end_message(event: Event) -> bytes:
    """The last message of a failed or cancelled job (the same for every reader)."""
    status = "failed" if event.type is EventType.FAILED else "cancelled"
    return _message({"status": status, "message": event.data.get("message")}, event.seq)


class VideoStepLog:
    """Encoder of one ``/api/v1/videos/{id}/stream``: the step log, then the outcome."""

    def __init__(self, video_url: Callable[[str], str]) -> None:
        self._video_url = video_url

    def _ready(self, job_id: str, seq: int) -> bytes:
        # Not cached on the event: the signed link's expiry counts from this reader's send.
        body = {
            "step": READY_STEP,
            "message": READY_MESSAGE,
            "video_url": self._video_url(job_id),
            "status": "completed",
        }
        return _message(body, seq)

    def snapshot(self, job: Job) -> bytes | None:
        """Only when the log's start is no longer stored: the latest step, or the outcome."""
        if job.status is JobStatus.COMPLETED:
            return self._ready(job.id, job.seq)
        if job.finished:
            body = {"status": job.status.value, "message": job.error or job.message}
            return _message(body, job.seq)
        if job.current_step is None:
            return None
        return _message({"step": job.current_step, "message": job.message}, job.seq)

    def event(self, event: Event) -> bytes | None:
        if event.type is EventType.LOG:
            step: bytes | None = event.frame(FRAME_CACHE, _step_message)
            return step
        if event.type is EventType.COMPLETED:
            return self._ready(event.job_id, event.seq)
        if event.type.terminal:
            end: bytes = event.frame(FRAME_CACHE, _end_message)
            return end
        return None  # progress and status changes: the log says it all

    def ping(self) -> bytes:
        return PING

    def timeout(self) -> bytes:
        # No message the seed would misread: the EventSource reconnects with Last-Event-ID.
        return b": stream time limit reached; reconnect to continue\n\n"

    def ends_with(self, event: Event) -> bool:
        return event.type.terminal


router = APIRouter(tags=[TAG])


@router.post(f"{VIDEOS}/generate", summary="Generate a video; costs credits (seed 002)")
async def generate(
    body: GenerateVideo, rt: RuntimeDep, user: UserDep, signer: VideoLinksDep, links: LinksDep
) -> Response:
    """Queue a video job → the video record (its ``id`` is the job id). Debits the video
    kind's cost (100 credits); 402 with the balance when it does not cover it."""
    job = await rt.jobs.submit(user, KIND, body.model_dump(mode="json"))
    return json_response(video_record(job, signer, links))


@router.get(f"{VIDEOS}/{{video_id}}", summary="A video record (seed 002)")
async def get_video(
    video_id: str, rt: RuntimeDep, user: UserDep, signer: VideoLinksDep, links: LinksDep
) -> Response:
    """The video record, with a fresh signed ``video_url`` once it is completed."""
    job = await rt.jobs.get(user, video_id, kind=KIND)
    return json_response(video_record(job, signer, links))


@router.get(
    f"{VIDEOS}/{{video_id}}/stream",
    summary="SSE: the video's step log, then its outcome (seed 002)",
    response_class=Response,
    responses=SSE_RESPONSE,
)
async def stream(
    video_id: str,
    rt: RuntimeDep,
    user: StreamUserDep,
    signer: VideoLinksDep,
    links: LinksDep,
    last_event_id_header: Annotated[str | None, Header(alias="last-event-id")] = None,
    last_event_id: Annotated[str | None, Query()] = None,
) -> Response:
    """Every step so far, in order, then each new one; ``step`` 9 with ``video_url`` (or
    ``status`` ``failed``/``cancelled``) ends the stream. Token by header or ``?token=``."""
    after = parse_last_event_id(last_event_id_header, last_event_id)
    job = await rt.jobs.get_stored(user, video_id, kind=KIND)
    if after is not None:
        if job.finished and after >= job.seq:
            return Response(status_code=204)
        rt.metrics.resumes.labels(transport="sse").inc()
    handle = await rt.hub.open(user.sub, "sse", job_id=video_id)
    encoder = VideoStepLog(lambda job_id: signer.url(job_id, links))
    stream = rt.hub.job_stream(handle, job, 0 if after is None else after, encoder)
    return SSEResponse(stream, rt.hub.close, retry_ms=rt.settings.sse_retry_ms)


@router.post(f"{VIDEOS}/{{video_id}}/cancel", summary="Stop generating a video (seed 002)")
async def cancel(
    video_id: str, rt: RuntimeDep, user: UserDep, signer: VideoLinksDep, links: LinksDep
) -> Response:
    """Cancel: no step follows, the stream ends ``cancelled`` and the credits come back.
    Idempotent; 409 once the video is finished otherwise."""
    job = await rt.jobs.cancel(user, video_id, kind=KIND)
    return json_response(video_record(job, signer, links))


@router.get(
    f"{VIDEOS}/{{video_id}}/video.mp4",
    summary="The finished video, by its signed link (seed 002)",
    response_class=Response,
    responses={200: {"content": {"video/mp4": {}}, "description": "The MP4 (Range works)"}},
)
async def video_file(
    video_id: str,
    rt: RuntimeDep,
    signer: VideoLinksDep,
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query()] = None,
) -> Response:
    """No auth header: the link's signature is the permission (403 if bad or expired)."""
    signer.check(video_id, expires, signature)
    job = await rt.store.get(video_id)
    if job is None or job.kind != KIND:
        raise JobNotFound(video_id)
    return result_response(job, rt.settings.data_dir)


@router.get("/api/v1/users/me", summary="The caller and their credits (seed 002)")
async def me(rt: RuntimeDep, user: UserDep) -> dict[str, Any]:
    """``{"sub": ..., "credits": <int>}``; a new user starts with
    ``JOBSTREAM_INITIAL_CREDITS``."""
    return {"sub": user.sub, "credits": await rt.store.balance(user.sub)}


__all__ = [
    "TAG",
    "GenerateVideo",
    "VideoLinks",
    "VideoStepLog",
    "router",
    "video_links",
    "video_record",
]
