"""An in-process store for tests and for embedding without a file. Not durable."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import replace

from jobstream.errors import BadRequest
from jobstream.models import MAX_POSITION, Event, EventType, Job, JobStatus, monotonic_us
from jobstream.store.base import (
    REFUNDED_STATUSES,
    Append,
    EventFactory,
    InsufficientCredits,
    JobPage,
    JobStore,
    Rebase,
    Renewal,
    StallEvents,
)

_KEPT = frozenset(
    {EventType.STATUS_CHANGE, EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED}
)


def encode_cursor(created_us: int, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_us}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ``BadRequest`` for a cursor this store did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split(":", 1)
        value = int(created)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("cursor is not one this server returned") from None
    if not 0 <= value <= MAX_POSITION:
        raise BadRequest("cursor is not one this server returned")
    return value, job_id


def created_us(job: Job) -> int:
    return int(job.created_at.timestamp() * 1_000_000)


class MemoryStore(JobStore):
    def __init__(self, *, max_events_per_job: int = 1000) -> None:
        self.max_events_per_job = max_events_per_job
        self._jobs: dict[str, Job] = {}
        self._events: dict[str, list[Event]] = {}
        self._leases: dict[str, tuple[str, int]] = {}
        self._credits: dict[str, int] = {}
        self._pos = 0
        self._stalled: set[str] = set()
        self._steps: dict[tuple[str, str], list[list[float]]] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def create(self, job: Job, event: Event) -> None:
        async with self._lock:
            if job.id in self._jobs:
                raise ValueError(f"job {job.id} exists")
            if job.cost > 0:
                balance = self._credits.get(job.owner, self.initial_credits)
                if balance < job.cost:
                    raise InsufficientCredits(job.owner, job.kind, job.cost, balance)
                self._credits[job.owner] = balance - job.cost
            self._jobs[job.id] = job
            self._events[job.id] = []
            self._store_events([event])

    async def balance(self, owner: str) -> int:
        return self._credits.get(owner, self.initial_credits)

    def _refund(self, stored: Job, after: Job) -> None:
        """Give the stored cost back when ``after`` is the job's failed/cancelled end."""
        if stored.cost > 0 and not stored.status.terminal and after.status in REFUNDED_STATUSES:
            self._credits[stored.owner] = (
                self._credits.get(stored.owner, self.initial_credits) + stored.cost
            )

    async def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    async def list_jobs(
        self,
        *,
        owner: str | None,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        jobs = [
            job
            for job in self._jobs.values()
            if (owner is None or job.owner == owner)
            and (status is None or job.status is status)
            and (kind is None or job.kind == kind)
        ]
        jobs.sort(key=lambda j: (created_us(j), j.id), reverse=True)
        if cursor is not None:
            key = decode_cursor(cursor)
            jobs = [j for j in jobs if (created_us(j), j.id) < key]
        page = jobs[:limit]
        more = len(jobs) > limit
        return JobPage(page, encode_cursor(created_us(page[-1]), page[-1].id) if more else None)

    def _store_events(self, events: Sequence[Event]) -> None:
        """Give each event its position (in order) and add it to its job's log."""
        for event in events:
            self._pos += 1
            event.pos = self._pos
            self._events[event.job_id].append(event)

    async def append_many(self, batches: Sequence[Append]) -> list[bool | Rebase]:
        async with self._lock:
            outcome: list[bool | Rebase] = []
            for batch in batches:
                job, events = batch.job, batch.events
                stored = self._jobs.get(job.id)
                first = events[0].seq if events else job.seq
                lease = self._leases.get(job.id)
                running = stored is not None and stored.status is JobStatus.RUNNING
                leased = batch.worker is None or (lease is not None and lease[0] == batch.worker)
                ours = running and leased and stored is not None and stored.seq == first - 1
                if not ours and running and leased and batch.worker is not None:
                    assert stored is not None
                    outcome.append(Rebase(stored.seq))
                    continue
                outcome.append(ours)
                if not ours or stored is None:
                    continue
                self._jobs[job.id] = replace(
                    job, cancel_requested=stored.cancel_requested, cost=stored.cost
                )
                self._refund(stored, job)
                self._store_events(events)
                if job.status.terminal:
                    self._leases.pop(job.id, None)
                    self._stalled.discard(job.id)
                self._trim(job.id)
            return outcome

    def _trim(self, job_id: str) -> None:
        log = self._events[job_id]
        if len(log) <= self.max_events_per_job:
            return
        floor = log[-1].seq - self.max_events_per_job
        self._events[job_id] = [e for e in log if e.seq > floor or e.type in _KEPT]

    async def transition(
        self, job_id: str, allowed_from: Collection[JobStatus], make_event: EventFactory
    ) -> tuple[Job, Event] | None:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status not in allowed_from:
                return None
            return self._apply(job, make_event)

    def _apply(self, stored: Job, make_event: EventFactory) -> tuple[Job, Event]:
        job, fillers = stored.fill_reserved()
        event = make_event(job)
        if event.seq != job.seq + 1:
            raise ValueError(f"event seq {event.seq} does not follow job seq {job.seq}")
        after = replace(job.apply(event), seq_reserved=event.seq)
        self._jobs[job.id] = after
        self._store_events([*fillers, event])
        self._refund(job, after)
        if after.status is not JobStatus.RUNNING:
            self._leases.pop(job.id, None)
            self._stalled.discard(job.id)
        self._trim(job.id)
        return after, event

    async def claim(
        self, kinds: Collection[str], worker_id: str, lease_seconds: float, make_event: EventFactory
    ) -> tuple[Job, Event] | None:
        async with self._lock:
            queued = [
                j for j in self._jobs.values() if j.status is JobStatus.QUEUED and j.kind in kinds
            ]
            if not queued:
                return None
            job = min(queued, key=lambda j: (created_us(j), j.id))
            claimed = self._apply(job, make_event)
            self._leases[job.id] = (worker_id, monotonic_us() + int(lease_seconds * 1e6))
            return claimed

    async def claim_job(
        self, job_id: str, worker_id: str, lease_seconds: float, make_event: EventFactory
    ) -> tuple[Job, Event] | None:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status is not JobStatus.QUEUED:
                return None
            claimed = self._apply(job, make_event)
            self._leases[job.id] = (worker_id, monotonic_us() + int(lease_seconds * 1e6))
            return claimed

    async def renew_leases(
        self,
        job_ids: Collection[str],
        worker_id: str,
        lease_seconds: float,
        *,
        unexpired_at: int | None = None,
    ) -> Renewal:
        lost, unstalled, cancelled = set(), set(), set()
        until = monotonic_us() + int(lease_seconds * 1e6)
        for job_id in job_ids:
            held = self._leases.get(job_id)
            expired = held is not None and unexpired_at is not None and held[1] < unexpired_at
            if held is None or held[0] != worker_id or expired:
                lost.add(job_id)
            else:
                self._leases[job_id] = (worker_id, until)
                if job_id in self._stalled:
                    self._stalled.discard(job_id)
                    unstalled.add(job_id)
                if self._jobs[job_id].cancel_requested:
                    cancelled.add(job_id)
        return Renewal(lost, unstalled, cancelled)

    async def announce_stalls(
        self, now_us: int, lease_seconds: float, make_events: StallEvents, limit: int = 100
    ) -> list[tuple[Job, list[Event]]]:
        half = int(lease_seconds * 1e6 / 2)
        announced: list[tuple[Job, list[Event]]] = []
        async with self._lock:
            for job_id, (_, until) in list(self._leases.items()):
                if len(announced) >= limit:
                    break
                job = self._jobs[job_id]
                if job.status is not JobStatus.RUNNING or job_id in self._stalled:
                    continue
                if until - now_us > half:
                    continue
                events = make_events(job)
                after = job
                for event in events:
                    after = after.apply(event)
                after = replace(after, seq_reserved=after.seq)
                self._jobs[job_id] = after
                self._store_events(events)
                self._stalled.add(job_id)
                self._trim(job_id)
                announced.append((after, events))
        return announced

    async def expired_leases(self, now_us: int, limit: int = 100) -> list[Job]:
        expired = [
            self._jobs[job_id]
            for job_id, (_, until) in self._leases.items()
            if until < now_us and self._jobs[job_id].status is JobStatus.RUNNING
        ]
        return expired[:limit]

    async def running_jobs(self, limit: int = 1000) -> list[Job]:
        return [j for j in self._jobs.values() if j.status is JobStatus.RUNNING][:limit]

    async def request_cancel(self, job_id: str) -> Job | None:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job = self._jobs[job_id] = replace(job, cancel_requested=True)
            return job

    async def events_after(
        self, job_id: str, after_seq: int, limit: int = 1000
    ) -> list[Event] | None:
        log = self._events.get(job_id, [])
        wanted = [e for e in log if e.seq > after_seq]
        if wanted and wanted[0].seq != after_seq + 1:
            return None
        # A trimmed middle shows as a hole between kept events.
        for before, after in itertools.pairwise(wanted):
            if after.seq != before.seq + 1:
                return None
        return wanted[:limit]

    async def feed_events(
        self, owner: str | None, after_pos: int, limit: int = 1000
    ) -> list[Event]:
        found = [
            e
            for log in self._events.values()
            for e in log
            if e.pos is not None and e.pos > after_pos and (owner is None or e.owner == owner)
        ]
        found.sort(key=lambda e: e.pos or 0)
        return found[: max(limit, 0)]

    async def feed_position(self) -> int:
        return self._pos

    async def changed_jobs(
        self, owner: str | None, after_pos: int, *, after_id: str = "", limit: int = 500
    ) -> list[Job]:
        ids = sorted(
            job_id
            for job_id, log in self._events.items()
            if job_id > after_id
            and log
            and (owner is None or self._jobs[job_id].owner == owner)
            and any(e.pos is not None and e.pos > after_pos for e in log)
        )
        return [self._jobs[job_id] for job_id in ids[: max(limit, 0)]]

    async def count_by_status(self) -> dict[tuple[str, JobStatus], int]:
        return dict(Counter((job.kind, job.status) for job in self._jobs.values()))

    async def record_steps(self, kind: str, bucket: str, durations: Sequence[float]) -> None:
        runs = self._steps.setdefault((kind, bucket), [])
        runs.insert(0, [float(d) for d in durations])
        del runs[self.max_step_runs :]

    async def step_history(self, kind: str, bucket: str, limit: int = 20) -> list[list[float]]:
        return [list(run) for run in self._steps.get((kind, bucket), [])[:limit]]
