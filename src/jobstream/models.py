"""The language every other module speaks: jobs, their statuses, and the events that change them.

A job changes only through events. Each event carries the job's next sequence number (``seq``),
so ``Job.apply(event)`` folds an event into a snapshot, and a client that knows the last ``seq``
it saw can ask for exactly the events after it. The status machine lives here too: nothing
leaves a terminal status, and ``check_transition`` is the one place that says what may move where.
"""

from __future__ import annotations

import enum
import secrets
import threading
import time
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from jobstream import codec


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        # By value: a member's own hash is a Python-level call (this runs per delivery).
        return self._value_ in _TERMINAL_VALUES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
_TERMINAL_VALUES = frozenset({"completed", "failed", "cancelled"})
"""The terminal statuses' and terminal events' values (the same three words)."""

# Every legal move. RUNNING -> QUEUED is the recovery move: a job whose worker died is re-queued.
_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class IllegalTransition(ValueError):
    """A status move the status machine refuses (for example anything out of a terminal status)."""

    def __init__(self, old: JobStatus, new: JobStatus) -> None:
        super().__init__(f"a job cannot move from {old.value!r} to {new.value!r}")
        self.old = old
        self.new = new


def check_transition(old: JobStatus, new: JobStatus) -> None:
    if new not in _TRANSITIONS[old]:
        raise IllegalTransition(old, new)


class EventType(enum.StrEnum):
    STATUS_CHANGE = "status_change"
    PROGRESS = "progress"
    LOG = "log"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self._value_ in _TERMINAL_VALUES

    @property
    def coalescable(self) -> bool:
        """Only progress may be replaced by a newer one for a slow reader."""
        return self is EventType.PROGRESS


_EVENT_TYPES: dict[str, EventType] = {member.value: member for member in EventType}
"""Value -> member without the enum's call machinery (a Redis batch decodes thousands)."""
TERMINAL_EVENTS = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED})
TERMINAL_EVENT_STATUS = {
    EventType.COMPLETED: JobStatus.COMPLETED,
    EventType.FAILED: JobStatus.FAILED,
    EventType.CANCELLED: JobStatus.CANCELLED,
}


MAX_POSITION = 2**63 - 1
"""The largest seq or cursor: every position fits a signed 64-bit column."""


def new_job_id() -> str:
    """128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


_clock_lock = threading.Lock()
_last_us = 0


def monotonic_us() -> int:
    """Wall-clock microseconds, strictly increasing within this process (an event's time)."""
    global _last_us
    with _clock_lock:
        now = time.time_ns() // 1000
        _last_us = now if now > _last_us else _last_us + 1
        return _last_us


@dataclass(slots=True, eq=False)
class Event:
    """One change to one job. ``seq`` is per job, from 1, without gaps. ``pos`` is the event's
    place in the store's one log of every event (assigned when it is stored, in commit order,
    without gaps): the cursor of the all-jobs streams, the same on every instance. ``ts_us`` is
    when it happened (microseconds since the epoch)."""

    job_id: str
    owner: str
    seq: int
    type: EventType
    data: dict[str, Any]
    ts_us: int = field(default_factory=monotonic_us)
    pos: int | None = None
    # Caches: an event is encoded once, however many readers receive it.
    _envelope: bytes | None = field(default=None, repr=False)
    frames: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ts(self) -> datetime:
        return datetime.fromtimestamp(self.ts_us / 1_000_000, UTC)

    def envelope(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "job_id": self.job_id,
            "seq": self.seq,
            "ts": isoformat(self.ts),
            "data": self.data,
        }

    @property
    def encoded(self) -> bytes:
        """The canonical envelope as JSON bytes, computed once."""
        if self._envelope is None:
            self._envelope = codec.dumps(self.envelope())
        return self._envelope

    def frame(self, name: str, build: Any) -> Any:
        """A transport's wire bytes for this event, built once by ``build(event)`` and shared."""
        cached = self.frames.get(name)
        if cached is None:
            cached = self.frames[name] = build(self)
        return cached

    def to_record(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "owner": self.owner,
            "seq": self.seq,
            "type": self.type.value,
            "data": self.data,
            "ts_us": self.ts_us,
            "pos": self.pos,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Event:
        return cls(
            job_id=record["job_id"],
            owner=record["owner"],
            seq=int(record["seq"]),
            type=_EVENT_TYPES.get(record["type"]) or EventType(record["type"]),
            data=record["data"],
            ts_us=int(record["ts_us"]),
            pos=None if record.get("pos") is None else int(record["pos"]),
        )


@dataclass(slots=True, frozen=True)
class Artifact:
    path: str
    media_type: str
    filename: str


@dataclass(slots=True, frozen=True)
class Job:
    id: str
    kind: str
    owner: str
    params: dict[str, Any]
    status: JobStatus = JobStatus.QUEUED
    state: str | None = None
    progress: float = 0.0
    current_step: int | None = None
    total_steps: int | None = None
    step_name: str | None = None
    message: str | None = None
    eta_seconds: float | None = None
    result: Any = None
    artifact: Artifact | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    updated_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    seq: int = 0
    cancel_requested: bool = False
    attempts: int = 0
    cost: int = 0
    """Credits debited from the owner when the job was stored; refunded if it fails or is
    cancelled (see ``JobStore.create``)."""
    seq_reserved: int = 0
    """The highest seq the running job's worker may have published (it publishes before it
    stores). Above ``seq`` only while a worker runs the job, or after it died."""

    @property
    def finished(self) -> bool:
        return self.status.terminal

    def apply(self, event: Event) -> Job:
        """The snapshot after ``event``. Events at or below ``self.seq`` are already folded in."""
        if event.seq <= self.seq:
            return self
        data = event.data
        ts = event.ts
        changes: dict[str, Any] = {"seq": event.seq, "updated_at": ts}
        if event.type is EventType.STATUS_CHANGE:
            new = JobStatus(data["new_status"])
            changes["status"] = new
            changes["state"] = None
            if new is JobStatus.RUNNING:
                changes["started_at"] = ts
                changes["attempts"] = self.attempts + 1
            if new is JobStatus.QUEUED:
                changes["eta_seconds"] = None
        elif event.type is EventType.PROGRESS:
            for key in ("progress", "current_step", "total_steps", "step_name", "state", "message"):
                if key in data:
                    changes[key] = data[key]
            if data.get("state") is None:
                changes["state"] = self.state
            changes["eta_seconds"] = data.get("eta_seconds")
        elif event.type is EventType.LOG:
            changes["message"] = data.get("message", self.message)
        elif event.type.terminal:
            changes["status"] = TERMINAL_EVENT_STATUS[event.type]
            changes["state"] = None
            changes["finished_at"] = ts
            changes["eta_seconds"] = None
            if event.type is EventType.COMPLETED:
                changes["progress"] = 100.0
                changes["result"] = data.get("result")
                if self.total_steps is not None:
                    changes["current_step"] = self.total_steps
            else:
                changes["error"] = data.get("message")
            if "message" in data:
                changes["message"] = data["message"]
        return _replaced(self, changes)

    def fill_reserved(self) -> tuple[Job, list[Event]]:
        """Close the gap a dead worker left between ``seq`` and ``seq_reserved``.

        Its events in that range may have reached readers but were never stored. Each of those
        seqs gets a progress event restating the stored state, so the log stays gap-free and
        no seq is ever used for two different events: a reader that saw the lost events skips
        these, a reader that did not sees the state it already had.
        """
        job, fillers = self, []
        for seq in range(self.seq + 1, self.seq_reserved + 1):
            event = Event(
                job_id=job.id,
                owner=job.owner,
                seq=seq,
                type=EventType.PROGRESS,
                data={
                    "progress": job.progress,
                    "current_step": job.current_step,
                    "total_steps": job.total_steps,
                    "step_name": job.step_name,
                    "state": job.state or job.status.value,
                    "message": job.message,
                    "eta_seconds": None,
                },
            )
            fillers.append(event)
            job = job.apply(event)
        return job, fillers

    def to_public(self) -> dict[str, Any]:
        """The job object of the API (without ``links``, which depend on the server's routes)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "owner": self.owner,
            "params": self.params,
            "status": self.status.value,
            "state": self.state or self.status.value,
            "progress": round(float(self.progress), 2),
            "current_step": self.current_step,
            "total_steps": self.total_steps,
            "step_name": self.step_name,
            "message": self.message,
            "eta_seconds": self.eta_seconds,
            "result": self.result,
            "artifact": (
                {"media_type": self.artifact.media_type, "filename": self.artifact.filename}
                if self.artifact
                else None
            ),
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "cost": self.cost,
            "created_at": isoformat(self.created_at),
            "started_at": isoformat(self.started_at),
            "updated_at": isoformat(self.updated_at),
            "finished_at": isoformat(self.finished_at),
            "seq": self.seq,
        }


_JOB_FIELDS = tuple(f.name for f in fields(Job))
_new_object = object.__new__
_set_field = object.__setattr__


def _replaced(job: Job, changes: dict[str, Any]) -> Job:
    """``dataclasses.replace(job, **changes)`` without its per-field checks and its keyword
    call into ``__init__``: a running job makes a snapshot per report, and ``replace`` was a
    quarter of a busy worker's time (docs/benchmarks.md, "The store under many jobs")."""
    if type(job) is not Job:
        return replace(job, **changes)
    new = _new_object(Job)
    for name in _JOB_FIELDS:
        _set_field(new, name, changes[name] if name in changes else getattr(job, name))
    return new
