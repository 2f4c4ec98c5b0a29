"""The job store contract: jobs and each job's event log, durable, and one log of every event.

Who writes what:
- ``create`` writes a new job and its first event (``status_change`` to ``queued``, seq 1).
- ``claim`` moves the oldest queued job of the given kinds to ``running`` (an event) and gives
  the claiming worker a lease. From then on that worker is the job's only event writer: it
  numbers events itself and hands them over through ``append_many`` (one transaction for the
  batches of every job a worker runs), which stores a job's batch only if the stored job is still
  ``running`` at the seq before it and leased to that worker (``False`` otherwise: the lease
  expired and the job was recovered or taken over). A writer whose lease was taken can write
  nothing more: a reader never sees two runs interleaved.
- ``transition`` is for every other status move (cancel of a queued job, recovery of a job
  whose worker died): an atomic read-check-write that builds the event from the current row.
- ``request_cancel`` only sets a flag; the worker ends the job at its next checkpoint.

Stored before published: every event is stored (committed) before anyone publishes it, so a seq
a reader saw is durable and always means the same event, whatever crashes afterwards.

Positions: every stored event gets ``pos``, its place in one log of all events, assigned in
commit order without gaps (one counter row, updated in each writing transaction, so concurrent
writers, in any number of processes, commit positions in order). ``feed_events`` reads an
owner's events after a position: the all-jobs streams resume from it on any instance.

Credits: a job's ``cost`` (its kind's price) is debited from the owner's balance by ``create``, in
the same transaction as the insert, and only if the balance covers it (``InsufficientCredits``
otherwise, and nothing is stored): a balance never goes negative, however many submits race. A
new owner's balance starts at ``initial_credits``. The cost comes back in the same transaction
that stores the job's ``failed`` or ``cancelled`` event (``append_many`` or ``transition``); a job
has one terminal event, so it is refunded at most once.

``seq_reserved``: earlier versions published progress ahead of storing it, up to a reserved seq.
A job left with ``seq_reserved > seq`` by such a version has its reserved seqs filled
(``Job.fill_reserved``) by its next ``transition`` or ``claim``, so a seq that readers may have
seen is never reused.

Each job's log is bounded: past ``max_events_per_job``, the oldest progress and log events are
trimmed; status changes and the terminal event are always kept. ``events_after`` says when the
events a reader asked for are gone (it answers ``None``), and the reader then takes a snapshot.

Step history (for the ETA, ``jobstream.eta``): ``record_steps`` keeps each completed run's step
durations under its kind and a parameter bucket (the kind's ``eta_bucket``, e.g. ``pages:16``),
bounded to the newest ``max_step_runs`` runs of each pair; ``step_history`` reads them back,
newest first, when a new run of that kind starts.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from jobstream.models import Event, Job, JobStatus


class StaleJob(RuntimeError):
    """The job is no longer the writer's: its stored status or seq moved on."""


class InsufficientCredits(Exception):
    """The owner's balance does not cover the job's cost (HTTP 402); nothing was stored."""

    def __init__(self, owner: str, kind: str, cost: int, balance: int) -> None:
        super().__init__(
            f"not enough credits: a {kind} job costs {cost} credits and your balance is {balance}"
        )
        self.owner = owner
        self.kind = kind
        self.cost = cost
        self.balance = balance


REFUNDED_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
"""Terminal statuses whose event gives the job's cost back to its owner."""


@dataclass(slots=True, frozen=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None


@dataclass(slots=True, frozen=True)
class Rebase:
    """``append_many``'s answer to a batch whose job is still leased to its writer but moved on
    by events others wrote (a stall notice): renumber the batch after ``seq`` and send it again."""

    seq: int


@dataclass(slots=True, frozen=True)
class Renewal:
    """What ``renew_leases`` did: ``lost`` leases (no longer the worker's), ``unstalled`` jobs
    whose stall notice the renewal answered (their worker says the state is back), and the jobs
    whose cancel was requested (the bus brings that at once; this is its backstop)."""

    lost: set[str]
    unstalled: set[str]
    cancelled: set[str] = field(default_factory=set)


StallEvents = Callable[[Job], list[Event]]


@dataclass(slots=True, frozen=True)
class Append:
    """One job's batch for ``append_many``: ``events`` (consecutive seqs) and ``job``, the
    snapshot after them, written by ``worker`` (the lease holder; ``None``: not fenced)."""

    job: Job
    events: Sequence[Event]
    worker: str | None = None


EventFactory = Callable[[Job], Event]


class JobStore(abc.ABC):
    max_events_per_job: int = 1000
    max_step_runs: int = 20
    """Runs of each (kind, bucket) whose step durations ``record_steps`` keeps."""
    initial_credits: int = 1000
    """The balance an owner's account starts with (``JOBSTREAM_INITIAL_CREDITS``)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and create the schema if missing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; pending writes are finished first."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    @abc.abstractmethod
    async def create(self, job: Job, event: Event) -> None:
        """Insert ``job`` (whose ``seq`` is ``event.seq``) and its first event, and debit
        ``job.cost`` from ``job.owner``'s balance, atomically.

        Raises ``InsufficientCredits`` (and stores nothing) if the balance is below the cost.
        """

    @abc.abstractmethod
    async def balance(self, owner: str) -> int:
        """The owner's credits (``initial_credits`` for an owner not seen yet)."""

    @abc.abstractmethod
    async def get(self, job_id: str) -> Job | None:
        """The stored snapshot, or ``None``."""

    @abc.abstractmethod
    async def list_jobs(
        self,
        *,
        owner: str | None,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """Jobs newest first (``owner=None``: everyone's); ``cursor`` continues a previous page."""

    @abc.abstractmethod
    async def append_many(self, batches: Sequence[Append]) -> list[bool | Rebase]:
        """Store every batch whose job is still the writer's, in one transaction; ``True`` for
        each batch stored, ``False`` for each refused (nothing of it is written), ``Rebase``
        for one to renumber (nothing of it is written either).

        A batch is the writer's when the stored job is ``running`` with ``seq ==
        events[0].seq - 1`` and (``worker`` given) is leased to ``worker``; with the lease held
        but the seq moved on (others appended a stall notice), the answer is
        ``Rebase(stored seq)``. Each stored event gets its ``pos``. A batch whose ``job`` ends
        ``failed`` or ``cancelled`` refunds the stored cost in the same transaction.
        """

    async def append(self, job: Job, events: Sequence[Event], worker: str | None = None) -> None:
        """``append_many`` for one batch; raises ``StaleJob`` unless it is stored."""
        (stored,) = await self.append_many([Append(job, events, worker)])
        if stored is not True:
            raise StaleJob(job.id)

    @abc.abstractmethod
    async def transition(
        self, job_id: str, allowed_from: Collection[JobStatus], make_event: EventFactory
    ) -> tuple[Job, Event] | None:
        """If the job's status is in ``allowed_from``, store ``make_event(job)`` (whose seq must be
        ``job.seq + 1``) and the snapshot after it, atomically (with the refund of the job's cost
        when the event ends it ``failed`` or ``cancelled``). ``None`` if the job is missing or
        its status is not allowed."""

    @abc.abstractmethod
    async def claim(
        self, kinds: Collection[str], worker_id: str, lease_seconds: float, make_event: EventFactory
    ) -> tuple[Job, Event] | None:
        """Atomically take the oldest queued job of ``kinds``: store ``make_event(job)``, the
        ``running`` status change, and lease the job to ``worker_id``. ``None`` if none is
        queued."""

    async def claim_many(
        self,
        kinds: Collection[str],
        worker_id: str,
        lease_seconds: float,
        make_event: EventFactory,
        limit: int,
    ) -> list[tuple[Job, Event]]:
        """Up to ``limit`` jobs as ``claim`` takes them, oldest first (a store may take them in
        one round trip; by default, ``claim`` until none is queued)."""
        claimed: list[tuple[Job, Event]] = []
        while len(claimed) < limit:
            one = await self.claim(kinds, worker_id, lease_seconds, make_event)
            if one is None:
                break
            claimed.append(one)
        return claimed

    @abc.abstractmethod
    async def claim_job(
        self, job_id: str, worker_id: str, lease_seconds: float, make_event: EventFactory
    ) -> tuple[Job, Event] | None:
        """``claim`` for one given job (a task engine hands a worker the job to run): only if
        it is queued. ``None`` if it is missing or not queued."""

    @abc.abstractmethod
    async def renew_leases(
        self,
        job_ids: Collection[str],
        worker_id: str,
        lease_seconds: float,
        *,
        unexpired_at: int | None = None,
    ) -> Renewal:
        """Extend the leases this worker still holds (and clear their stall notices); with
        ``unexpired_at`` (microseconds since the epoch), a lease that ended before it is not
        renewed and counts as lost (an external worker's late report: its job is recovered)."""

    @abc.abstractmethod
    async def announce_stalls(
        self, now_us: int, lease_seconds: float, make_events: StallEvents, limit: int = 100
    ) -> list[tuple[Job, list[Event]]]:
        """Running jobs whose lease went unrenewed for half of ``lease_seconds`` and are not
        announced yet: store ``make_events(job)`` (consecutive seqs after the job's) and mark
        the job stalled, each atomically, exactly once whoever else calls this meanwhile.
        Returns the jobs after their events, and the events, to publish."""

    @abc.abstractmethod
    async def expired_leases(self, now_us: int, limit: int = 100) -> list[Job]:
        """Running jobs whose lease ended before ``now_us`` (microseconds since the epoch)."""

    @abc.abstractmethod
    async def running_jobs(self, limit: int = 1000) -> list[Job]:
        """Every running job (the embedded server recovers them all at start)."""

    @abc.abstractmethod
    async def request_cancel(self, job_id: str) -> Job | None:
        """Set the job's cancel flag; the updated job, or ``None`` if it is missing."""

    @abc.abstractmethod
    async def events_after(
        self, job_id: str, after_seq: int, limit: int = 1000
    ) -> list[Event] | None:
        """The stored events with ``seq > after_seq``, in order; ``None`` if some of them were
        trimmed from the log (the reader should take a snapshot instead)."""

    @abc.abstractmethod
    async def feed_events(
        self, owner: str | None, after_pos: int, limit: int = 1000
    ) -> list[Event]:
        """An owner's (``None``: everyone's) stored events with ``pos > after_pos``, by ``pos``."""

    @abc.abstractmethod
    async def feed_position(self) -> int:
        """The highest ``pos`` stored so far (0 before the first event)."""

    @abc.abstractmethod
    async def changed_jobs(
        self, owner: str | None, after_pos: int, *, after_id: str = "", limit: int = 500
    ) -> list[Job]:
        """An owner's (``None``: everyone's) jobs with stored events at ``pos > after_pos``,
        ordered by id, from ids above ``after_id`` (the previous page's last), at most
        ``limit``."""

    @abc.abstractmethod
    async def count_by_status(self) -> dict[tuple[str, JobStatus], int]:
        """How many jobs there are of each ``(kind, status)`` (pairs with none are left out)."""

    @abc.abstractmethod
    async def record_steps(self, kind: str, bucket: str, durations: Sequence[float]) -> None:
        """Keep one completed run's step durations (seconds, in step order) for ``kind`` and
        ``bucket``; only the newest ``max_step_runs`` runs of each pair stay."""

    @abc.abstractmethod
    async def step_history(self, kind: str, bucket: str, limit: int = 20) -> list[list[float]]:
        """The step durations recorded for ``kind`` and ``bucket``, newest run first, at most
        ``limit`` runs (``[]`` when none)."""
