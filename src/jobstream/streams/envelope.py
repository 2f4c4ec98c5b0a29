"""The canonical envelope of what is not a stored event: a job's ``snapshot``, and the opening
``snapshot`` of an all-jobs stream. SSE and WebSocket send the same bytes in ``data:`` and in a
text message (SPEC section 3).

Stored events carry paths from the server's root (``output_path``); a server mounted under a
prefix rewrites them per stream (``event_envelope``), so the encode-once cache is per prefix.
"""

from __future__ import annotations

from typing import Any

from jobstream import codec
from jobstream.models import Event, EventType, Job, isoformat, utcnow
from jobstream.server.links import Links


def snapshot_envelope(job: Job, links: Links) -> bytes:
    """``{"type": "snapshot", "job_id", "seq", "ts", "data": <the job object>}``."""
    return codec.dumps(
        {
            "type": "snapshot",
            "job_id": job.id,
            "seq": job.seq,
            "ts": isoformat(job.updated_at),
            "data": links.public_job(job),
        }
    )


def feed_snapshot_envelope(jobs: list[Job], cursor: int | None, links: Links) -> bytes:
    """Several jobs at once on an all-jobs stream (its first message, or what stands for the
    events a long-away client skips), and the cursor to resume from (``None``: more follow)."""
    return codec.dumps(
        {
            "type": "snapshot",
            "job_id": None,
            "seq": None,
            "cursor": cursor,
            "ts": isoformat(utcnow()),
            "data": {"items": [links.public_job(job) for job in jobs]},
        }
    )


def event_envelope(event: Event, links: Links, *, cursor: bool = False) -> bytes:
    """The event's envelope (plus its ``cursor`` for an all-jobs stream), with its download
    path under the server's prefix."""
    if not cursor and (not links.base or event.type is not EventType.COMPLETED):
        return event.encoded
    body: dict[str, Any] = event.envelope()
    if cursor:
        body["cursor"] = event.pos
    output = body["data"].get("output_path") if event.type is EventType.COMPLETED else None
    if links.base and isinstance(output, str) and output.startswith("/"):
        body["data"] = {**body["data"], "output_path": links.url(output)}
    return codec.dumps(body)


__all__ = ["event_envelope", "feed_snapshot_envelope", "snapshot_envelope"]
