"""The SQL store: SQLite (the embedded default, one file) or PostgreSQL (several instances).

One code path for both, on SQLAlchemy Core with the async drivers (``aiosqlite``, ``asyncpg``).
Every status-sensitive write is a conditional ``UPDATE`` (on the status and ``seq`` it read), so a
write based on a stale read never lands, whichever database and however many processes. On top:

- PostgreSQL: ``claim`` takes the oldest queued row with ``FOR UPDATE SKIP LOCKED``, so claimers
  in several processes never wait on, or collide over, the same job; ``transition`` locks its row.
- SQLite: WAL, ``busy_timeout``, and an ``asyncio.Lock`` that serialises this process's write
  transactions (SQLite has one writer at a time; queuing them here beats ``SQLITE_BUSY``).

Credits live in ``jobstream_accounts`` (one row per owner, created at its first paid job with
``initial_credits``). The debit is a conditional ``UPDATE … WHERE credits >= cost`` in the job
insert's transaction: concurrent submits serialise on the account row and a balance cannot go
negative (a ``CHECK`` constraint says so too). Refunds ride in the terminal event's transaction.

Step durations for the ETA live in ``jobstream_step_runs`` (one row per completed run, the
oldest rows of a kind and bucket deleted past ``max_step_runs`` in the insert's transaction);
``create_all`` adds the table to a database made by an earlier version.

Timestamps are stored as microseconds since the epoch (``BigInteger``), JSON through the project
codec (orjson).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, RowMapping, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jobstream import codec
from jobstream.models import Artifact, Event, EventType, Job, JobStatus, monotonic_us
from jobstream.store import inline
from jobstream.store.base import (
    REFUNDED_STATUSES,
    Append,
    EventFactory,
    InsufficientCredits,
    JobPage,
    JobStore,
    Rebase,
    Renewal,
    StaleJob,
    StallEvents,
)
from jobstream.store.batch import SQLiteBatchWriter, append_many_postgres, plan
from jobstream.store.memory import created_us, decode_cursor, encode_cursor

__all__ = ["SQLStore", "normalize_url"]

_Done = Callable[[list[bool | Rebase] | None, BaseException | None], None]
"""How ``append_many_soon`` answers: the outcome, or the error."""

# Ids compare byte-wise everywhere (as Python strings do in the memory store), whatever the
# PostgreSQL server's default collation: list order and page cursors depend on it.
_Id = sa.String().with_variant(sa.String(collation="C"), "postgresql")

metadata = sa.MetaData()

jobs_table = sa.Table(
    "jobstream_jobs",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("state", sa.String, nullable=True),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("current_step", sa.Integer, nullable=True),
    sa.Column("total_steps", sa.Integer, nullable=True),
    sa.Column("step_name", sa.String, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("eta_seconds", sa.Float, nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("artifact_path", sa.Text, nullable=True),
    sa.Column("artifact_media_type", sa.String, nullable=True),
    sa.Column("artifact_filename", sa.String, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("started_us", sa.BigInteger, nullable=True),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Column("finished_us", sa.BigInteger, nullable=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String, nullable=True),
    sa.Column("lease_until_us", sa.BigInteger, nullable=True),
    sa.Column("cost", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("seq_reserved", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("stalled_us", sa.BigInteger, nullable=True),
    sa.Index("ix_jobstream_jobs_owner_created", "owner", "created_us", "id"),
    sa.Index("ix_jobstream_jobs_status_kind_created", "status", "kind", "created_us"),
    sa.Index("ix_jobstream_jobs_status_lease", "status", "lease_until_us"),
)

events_table = sa.Table(
    "jobstream_events",
    metadata,
    sa.Column(
        "job_id",
        _Id,
        sa.ForeignKey("jobstream_jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    # The event's time in microseconds (the column kept its first name).
    sa.Column("cursor", sa.BigInteger, nullable=False, key="ts_us"),
    sa.Column("data", sa.JSON, nullable=False),
    # Place in the log of every event: assigned from ``jobstream_positions`` at commit.
    sa.Column("pos", sa.BigInteger, nullable=True),
    sa.Index("ix_jobstream_events_pos", "pos", unique=True),
    sa.Index("ix_jobstream_events_owner_pos", "owner", "pos"),
)

positions_table = sa.Table(
    "jobstream_positions",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

accounts_table = sa.Table(
    "jobstream_accounts",
    metadata,
    sa.Column("sub", _Id, primary_key=True),
    sa.Column("credits", sa.BigInteger, nullable=False),
    sa.CheckConstraint("credits >= 0", name="ck_jobstream_accounts_credits_not_negative"),
)

step_runs_table = sa.Table(
    "jobstream_step_runs",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("bucket", sa.String, nullable=False),
    sa.Column("recorded_us", sa.BigInteger, nullable=False),
    sa.Column("durations", sa.JSON, nullable=False),
    sa.Index("ix_jobstream_step_runs_kind_bucket", "kind", "bucket", "id"),
)
"""Completed runs' step durations (the ETA's history), newest ``max_step_runs`` per pair."""

_J = jobs_table.c
_E = events_table.c
_A = accounts_table.c
_P = positions_table.c
_EVENTS_POSITION = "events"

# Trimming removes only these; status changes and terminal events stay for good.
_TRIMMABLE = (EventType.PROGRESS.value, EventType.LOG.value)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

# How often a conditional write that lost a race (another process moved the row between the
# read and the write; only possible without row locks, i.e. on SQLite) is retried.
_RACE_RETRIES = 20


# --- conversions: the only places rows and objects meet -----------------------------------


def _to_us(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _ONE_US


def _opt_us(ts: datetime | None) -> int | None:
    return None if ts is None else _to_us(ts)


def _from_us(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=int(us))


def _job_state_values(job: Job) -> dict[str, Any]:
    """Every column a snapshot determines (not the identity, the cancel flag or the lease)."""
    artifact = job.artifact
    return {
        "status": job.status.value,
        "state": job.state,
        "progress": float(job.progress),
        "current_step": job.current_step,
        "total_steps": job.total_steps,
        "step_name": job.step_name,
        "message": job.message,
        "eta_seconds": job.eta_seconds,
        "result": job.result,
        "artifact_path": artifact.path if artifact else None,
        "artifact_media_type": artifact.media_type if artifact else None,
        "artifact_filename": artifact.filename if artifact else None,
        "error": job.error,
        "started_us": _opt_us(job.started_at),
        "updated_us": _to_us(job.updated_at),
        "finished_us": _opt_us(job.finished_at),
        "seq": job.seq,
        "seq_reserved": job.seq_reserved,
        "attempts": job.attempts,
    }


def _job_to_row(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "owner": job.owner,
        "params": job.params,
        "created_us": created_us(job),
        "cancel_requested": job.cancel_requested,
        "lease_owner": None,
        "lease_until_us": None,
        "cost": job.cost,
        **_job_state_values(job),
    }


def _row_to_job(row: RowMapping | Mapping[str, Any]) -> Job:
    artifact = None
    if row["artifact_path"] is not None:
        artifact = Artifact(
            path=row["artifact_path"],
            media_type=row["artifact_media_type"],
            filename=row["artifact_filename"],
        )
    created = _from_us(row["created_us"])
    updated = _from_us(row["updated_us"])
    assert created is not None and updated is not None
    return Job(
        id=row["id"],
        kind=row["kind"],
        owner=row["owner"],
        params=row["params"],
        status=JobStatus(row["status"]),
        state=row["state"],
        progress=float(row["progress"]),
        current_step=row["current_step"],
        total_steps=row["total_steps"],
        step_name=row["step_name"],
        message=row["message"],
        eta_seconds=row["eta_seconds"],
        result=row["result"],
        artifact=artifact,
        error=row["error"],
        created_at=created,
        started_at=_from_us(row["started_us"]),
        updated_at=updated,
        finished_at=_from_us(row["finished_us"]),
        seq=int(row["seq"]),
        cancel_requested=bool(row["cancel_requested"]),
        attempts=int(row["attempts"]),
        cost=int(row["cost"]),
        seq_reserved=int(row["seq_reserved"]),
    )


def _event_to_row(event: Event) -> dict[str, Any]:
    return {
        "job_id": event.job_id,
        "seq": event.seq,
        "owner": event.owner,
        "type": event.type.value,
        "ts_us": event.ts_us,
        "data": event.data,
        "pos": event.pos,
    }


def _moved(
    stored: Job, make_event: EventFactory, lease: tuple[str, int] | None
) -> tuple[Job, Event, Job, list[Event], dict[str, Any]]:
    """What a move of ``stored`` by ``make_event`` writes: (the job with the reserved seqs an
    earlier version left filled, the event, the job after it, the fillers, the row's new
    values)."""
    job, fillers = stored.fill_reserved()
    event = make_event(job)
    if event.seq != job.seq + 1:
        raise ValueError(f"event seq {event.seq} does not follow job seq {job.seq}")
    after = replace(job.apply(event), seq_reserved=event.seq)
    values = _job_state_values(after)
    values["stalled_us"] = None  # a move of status, or a new lease: no stall stands
    if lease is not None:
        values["lease_owner"], values["lease_until_us"] = lease
    elif after.status is not JobStatus.RUNNING:
        values["lease_owner"] = values["lease_until_us"] = None
    return job, event, after, fillers, values


def _row_to_event(row: RowMapping) -> Event:
    return Event(
        job_id=row["job_id"],
        owner=row["owner"],
        seq=int(row["seq"]),
        type=EventType(row["type"]),
        data=row["data"],
        ts_us=int(row["ts_us"]),
        pos=None if row["pos"] is None else int(row["pos"]),
    )


def _json_loads(value: Any) -> Any:
    """SQLite gives a JSON column NUMERIC affinity: a stored scalar such as ``1`` comes back as
    a number, not as JSON text."""
    if isinstance(value, int | float):
        return value
    return codec.loads(value)


def normalize_url(url: str | URL) -> URL:
    """Point plain ``sqlite://`` and ``postgresql://`` (or ``postgres://``) URLs at the async
    drivers; URLs that already name a driver are kept."""
    parsed = make_url(url)
    name = parsed.drivername
    if name == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif name in ("postgresql", "postgres", "postgres+asyncpg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed


def _sqlite_in_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or "mode=memory" in database


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
    # The transactions are begun below, not by the driver (SQLAlchemy's pysqlite recipe).
    dbapi_connection.isolation_level = None


_WRITE = "jobstream_write"


def _sqlite_begin(conn: sa.Connection) -> None:
    """A write transaction takes SQLite's write lock at its start (``BEGIN IMMEDIATE``):
    another connection's writer, such as the batch writer's thread, makes it wait
    (``busy_timeout``) instead of failing it on a read-to-write upgrade over a stale snapshot
    (``SQLITE_BUSY_SNAPSHOT``, which waiting cannot cure)."""
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class SQLStore(JobStore):
    def __init__(self, url: str, *, max_events_per_job: int = 1000) -> None:
        self.max_events_per_job = max_events_per_job
        self.url = normalize_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported store URL {url!r}: use sqlite:/// or postgresql://")
        self._sqlite = self.dialect == "sqlite"
        # An in-memory SQLite database is one shared connection: every use must take turns.
        self._serialise_reads = self._sqlite and _sqlite_in_memory(self.url)
        self._write_lock = asyncio.Lock()
        self._engine: AsyncEngine | None = None
        self._batch_writer: SQLiteBatchWriter | None = None
        self._waiting_batches: list[tuple[Sequence[Append], _Done]] = []
        """Group commits that came while a write transaction of ours was open: committed the
        moment it ends (``_commit_waiting``), before the next write waiting for the lock."""
        self._inline: inline.SQLiteInline | None = None
        """A job's create, claim and step writes on a SQLite file (``store/inline.py``)."""

    # --- lifecycle -------------------------------------------------------------------------

    def _make_engine(self) -> AsyncEngine:
        if self._sqlite:
            database = self.url.database or ""
            if not _sqlite_in_memory(self.url) and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            self.url,
            json_serializer=codec.dumps_str,
            json_deserializer=_json_loads,
        )
        if self._sqlite:
            sa_event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            sa_event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the store is not started: await store.start() first")
        return self._engine

    async def start(self) -> None:
        if self._engine is None:
            self._engine = self._make_engine()
        if self._sqlite and not self._serialise_reads and self._batch_writer is None:
            self._batch_writer = SQLiteBatchWriter(
                self.url.database or "", _job_state_values, lambda: self.max_events_per_job
            )
            self._inline = inline.SQLiteInline(self.url.database or "")
        async with self._write() as conn:
            if not self._sqlite:
                # Several instances and workers start at once on a new database: one at a time
                # creates the schema (concurrent CREATE TABLEs collide in the catalogue).
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7270447516734107)"))
            await conn.run_sync(metadata.create_all, checkfirst=True)
            await conn.run_sync(self._migrate)

    def _migrate(self, conn: sa.Connection) -> None:
        """Bring a database made by an earlier version up to date (these came later)."""
        inspector = sa.inspect(conn)
        columns = {c["name"] for c in inspector.get_columns(jobs_table.name)}
        exists = "" if self._sqlite else "IF NOT EXISTS "
        for name in ("cost", "seq_reserved"):
            if name not in columns:
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {jobs_table.name} ADD COLUMN {exists}"
                        f"{name} INTEGER NOT NULL DEFAULT 0"
                    )
                )
        if "stalled_us" not in columns:
            conn.execute(sa.text(f"ALTER TABLE {jobs_table.name} ADD COLUMN stalled_us BIGINT"))
        events = events_table.name
        if "pos" not in {c["name"] for c in inspector.get_columns(events)}:
            # Positions for the events stored so far, in the order of their time.
            conn.execute(sa.text(f"ALTER TABLE {events} ADD COLUMN pos BIGINT"))
            conn.execute(
                sa.text(
                    f"UPDATE {events} SET pos = numbered.n FROM (SELECT job_id AS j, seq AS s, "
                    f'ROW_NUMBER() OVER (ORDER BY "cursor", job_id, seq) AS n FROM {events}) '
                    f"AS numbered WHERE {events}.job_id = numbered.j AND {events}.seq = numbered.s"
                )
            )
        for index in events_table.indexes:
            index.create(conn, checkfirst=True)
        top = conn.execute(sa.select(sa.func.coalesce(sa.func.max(_E.pos), 0))).scalar_one()
        dialect = sqlite_dialect if self._sqlite else pg_dialect
        conn.execute(
            dialect.insert(positions_table)
            .values(name=_EVENTS_POSITION, value=int(top))
            .on_conflict_do_nothing(index_elements=["name"])
        )

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        writer, self._batch_writer = self._batch_writer, None
        fast, self._inline = self._inline, None
        if fast is not None:
            await fast.close()
        if writer is not None:
            async with self._write_lock:
                self._commit_waiting(writer)
                await writer.close()
        if engine is None:
            return
        # Let this process's write in progress (SQLite) finish before the connections go.
        async with self._write_lock if self._sqlite else contextlib.nullcontext():
            await engine.dispose()

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction (committed on success, rolled back on error)."""
        if self._sqlite:
            try:
                async with self._write_lock, self.engine.connect() as conn:
                    await conn.execution_options(**{_WRITE: True})
                    async with conn.begin():
                        yield conn
            finally:
                # The lock is free and the next writer waiting for it has not run yet (unless
                # this one never had it: cancelled while waiting for another's to end).
                writer = self._batch_writer
                if self._waiting_batches and writer is not None and not self._write_lock.locked():
                    self._commit_waiting(writer)
        else:
            async with self.engine.begin() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        if self._serialise_reads:
            async with self._write_lock, self.engine.connect() as conn:
                yield conn
        else:
            async with self.engine.connect() as conn:
                yield conn

    # --- shared pieces ----------------------------------------------------------------------

    async def _insert_events(self, conn: AsyncConnection, events: Sequence[Event]) -> None:
        """Insert ``events`` with the next positions, in order. The counter row is updated in
        this transaction: a concurrent writer (any process) waits for it until this one commits,
        so positions commit in order and without gaps. Call it last, just before the commit,
        so the row is held briefly."""
        if not events:
            return
        if self._sqlite:  # writers take turns: the highest stored position, plus one
            top = await conn.execute(sa.select(sa.func.coalesce(sa.func.max(_E.pos), 0)))
            last = int(top.scalar_one()) + len(events)
        else:
            last = (
                await conn.execute(
                    positions_table.update()
                    .where(_P.name == _EVENTS_POSITION)
                    .values(value=_P.value + len(events))
                    .returning(_P.value)
                )
            ).scalar_one()
        for offset, event in enumerate(events, start=last - len(events) + 1):
            event.pos = offset
        await conn.execute(events_table.insert(), [_event_to_row(e) for e in events])

    async def _trim(self, conn: AsyncConnection, job_id: str, latest_seq: int) -> None:
        # Events at or below the floor go (but status changes and terminal events): a single
        # range delete on the primary key, and only once the log can be longer than the bound.
        floor = latest_seq - self.max_events_per_job
        if floor <= 0:
            return
        await conn.execute(
            events_table.delete().where(
                _E.job_id == job_id, _E.seq <= floor, _E.type.in_(_TRIMMABLE)
            )
        )

    async def _apply(
        self,
        conn: AsyncConnection,
        stored: Job,
        make_event: EventFactory,
        lease: tuple[str, int] | None = None,
    ) -> tuple[Job, Event] | None:
        """Store ``make_event(job)`` and the snapshot after it, where ``job`` is the stored row
        with the reserved seqs an earlier version left filled; only if the row is still at
        ``stored``'s status and seq (``None`` if it moved: only without a row lock, i.e. another
        process on SQLite)."""
        job, event, after, fillers, values = _moved(stored, make_event, lease)
        updated = await conn.execute(
            jobs_table.update()
            .where(_J.id == job.id, _J.status == stored.status.value, _J.seq == stored.seq)
            .values(values)
        )
        if updated.rowcount != 1:
            return None
        await self._trim(conn, job.id, event.seq)
        if not job.status.terminal and after.status in REFUNDED_STATUSES:
            await self._refund(conn, job.id, job.owner)
        await self._insert_events(conn, [*fillers, event])
        return after, event

    # --- credits ----------------------------------------------------------------------------

    def _open_account(self, owner: str) -> sa.Insert:
        """Insert the owner's account with the starting balance, unless it exists."""
        values = {"sub": owner, "credits": self.initial_credits}
        if self._sqlite:
            return (
                sqlite_dialect.insert(accounts_table)
                .values(values)
                .on_conflict_do_nothing(index_elements=["sub"])
            )
        return (
            pg_dialect.insert(accounts_table)
            .values(values)
            .on_conflict_do_nothing(index_elements=["sub"])
        )

    async def _debit(self, conn: AsyncConnection, job: Job) -> None:
        await conn.execute(self._open_account(job.owner))
        debited = await conn.execute(
            accounts_table.update()
            .where(_A.sub == job.owner, _A.credits >= job.cost)
            .values(credits=_A.credits - job.cost)
        )
        if debited.rowcount != 1:
            balance = (
                await conn.execute(sa.select(_A.credits).where(_A.sub == job.owner))
            ).scalar_one()
            raise InsufficientCredits(job.owner, job.kind, job.cost, int(balance))

    async def _refund(self, conn: AsyncConnection, job_id: str, owner: str) -> None:
        """Give back the job's stored cost (the account exists: the debit made it)."""
        cost = sa.select(_J.cost).where(_J.id == job_id).scalar_subquery()
        await conn.execute(
            accounts_table.update()
            .where(_A.sub == owner, cost > 0)
            .values(credits=_A.credits + cost)
        )

    async def balance(self, owner: str) -> int:
        async with self._read() as conn:
            credits = (
                await conn.execute(sa.select(_A.credits).where(_A.sub == owner))
            ).scalar_one_or_none()
        return self.initial_credits if credits is None else int(credits)

    # --- the contract ----------------------------------------------------------------------

    def _create_inline(self, conn: inline.Connection, job: Job, event: Event) -> None:
        if job.cost > 0:
            inline.debit(conn, job.owner, job.kind, job.cost, self.initial_credits)
        inline.insert_row(conn, jobs_table.name, _job_to_row(job))
        inline.insert_events(conn, [event])

    def _apply_inline(
        self,
        conn: inline.Connection,
        stored: Job,
        make_event: EventFactory,
        lease: tuple[str, int] | None = None,
    ) -> tuple[Job, Event] | None:
        """``_apply`` on the inline connection."""
        job, event, after, fillers, values = _moved(stored, make_event, lease)
        if not inline.update_job(conn, job.id, stored.status.value, stored.seq, values):
            return None
        inline.trim(conn, job.id, event.seq - self.max_events_per_job)
        if not job.status.terminal and after.status in REFUNDED_STATUSES:
            inline.refund(conn, job.id, job.owner)
        inline.insert_events(conn, [*fillers, event])
        return after, event

    def _claim_inline(
        self,
        conn: inline.Connection,
        kinds: list[str],
        worker_id: str,
        lease_seconds: float,
        make_event: EventFactory,
    ) -> tuple[Job, Event] | None:
        row = inline.oldest_queued(conn, kinds)
        if row is None:
            return None
        lease = (worker_id, monotonic_us() + int(lease_seconds * 1e6))
        return self._apply_inline(conn, _row_to_job(row), make_event, lease)

    async def create(self, job: Job, event: Event) -> None:
        if self._inline is not None:
            try:
                done = await self._inline.soon(lambda conn: self._create_inline(conn, job, event))
            except inline.IntegrityError as exc:
                raise ValueError(f"job {job.id} exists") from exc
            if not isinstance(done, inline.Busy):
                return
        try:
            async with self._write() as conn:
                if job.cost > 0:
                    await self._debit(conn, job)
                await conn.execute(jobs_table.insert(), [_job_to_row(job)])
                await self._insert_events(conn, [event])
        except IntegrityError as exc:
            raise ValueError(f"job {job.id} exists") from exc

    async def get(self, job_id: str) -> Job | None:
        async with self._read() as conn:
            row = (
                (await conn.execute(sa.select(jobs_table).where(_J.id == job_id)))
                .mappings()
                .first()
            )
        return None if row is None else _row_to_job(row)

    async def list_jobs(
        self,
        *,
        owner: str | None,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        query = sa.select(jobs_table)
        if owner is not None:
            query = query.where(_J.owner == owner)
        if status is not None:
            query = query.where(_J.status == JobStatus(status).value)
        if kind is not None:
            query = query.where(_J.kind == kind)
        if cursor is not None:
            before_us, before_id = decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    _J.created_us < before_us,
                    sa.and_(_J.created_us == before_us, _J.id < before_id),
                )
            )
        limit = max(limit, 0)
        query = query.order_by(_J.created_us.desc(), _J.id.desc()).limit(limit + 1)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        page = [_row_to_job(row) for row in rows[:limit]]
        more = len(rows) > limit and bool(page)
        next_cursor = encode_cursor(rows[limit - 1]["created_us"], page[-1].id) if more else None
        return JobPage(page, next_cursor)

    async def append_many(self, batches: Sequence[Append]) -> list[bool | Rebase]:
        if not batches:
            return []
        if self._batch_writer is not None:
            return await self._batch_writer.append_many(batches)
        if not self._sqlite:
            async with self._write() as conn:
                raw = await conn.get_raw_connection()
                pg: Any = raw.driver_connection
                # SQLAlchemy begins its transaction lazily, at its first statement: on the raw
                # connection, nothing has begun yet, and each statement would commit alone (a
                # job row moved on without its events, after a crash in between).
                async with pg.transaction():
                    return await append_many_postgres(
                        pg, batches, _job_state_values, self.max_events_per_job
                    )
        return await self._append_many_sqlalchemy(batches)

    @property
    def append_many_soon(self) -> Callable[..., None] | None:
        """``append_many`` with a callback, for the worker's group commit: on a SQLite file,
        inline when nothing else of this process writes (see ``SQLiteBatchWriter``); ``None``
        where there is no such path (PostgreSQL, in-memory SQLite)."""
        return self._append_many_soon if self._batch_writer is not None else None

    def _append_many_soon(self, batches: Sequence[Append], done: _Done) -> None:
        writer = self._batch_writer
        assert writer is not None
        if self._write_lock.locked():  # a transaction of ours is open on another connection
            self._waiting_batches.append((batches, done))
            return
        self._commit_inline(writer, batches, done)

    def _commit_waiting(self, writer: SQLiteBatchWriter) -> None:
        waiting, self._waiting_batches = self._waiting_batches, []
        for batches, done in waiting:
            self._commit_inline(writer, batches, done)

    def _commit_inline(
        self, writer: SQLiteBatchWriter, batches: Sequence[Append], done: _Done
    ) -> None:
        """Inline now; on the writer's thread if another process holds the database. The thread
        is the slow way under load (each row its ``executemany`` steps takes the GIL back from
        the busy loop, and while that transaction crawls the next batch grows), so a batch
        that finds a write of this process open waits for it rather than going there."""
        try:
            outcome = writer.try_inline(batches)
        except Exception as exc:
            done(None, exc)
            return
        if outcome is not None:
            done(outcome, None)
            return

        def settle(task: asyncio.Future[list[bool | Rebase]]) -> None:
            error = task.exception()
            done(None if error is not None else task.result(), error)

        asyncio.ensure_future(writer.append_many(batches)).add_done_callback(settle)

    async def _append_many_sqlalchemy(self, batches: Sequence[Append]) -> list[bool | Rebase]:
        """For an in-memory SQLite database (one shared connection: no second one can see it)."""
        ids = sorted({batch.job.id for batch in batches})
        check = sa.select(_J.id, _J.status, _J.seq, _J.lease_owner, _J.lease_until_us).where(
            _J.id.in_(ids)
        )
        async with self._write() as conn:
            stored = {row.id: row._asdict() for row in await conn.execute(check)}
            todo = plan(stored, batches, _job_state_values, self.max_events_per_job)
            for group in (todo.rows, todo.running):
                if group:
                    rows = [{**row, "_id": row.pop("id")} for row in group]
                    update = jobs_table.update().where(_J.id == sa.bindparam("_id"))
                    await conn.execute(update, rows)
            for job_id, floor in todo.trims:
                await self._trim(conn, job_id, floor + self.max_events_per_job)
            for job_id, owner in todo.refunds:
                await self._refund(conn, job_id, owner)
            await self._insert_events(conn, todo.events)
        return todo.outcome

    async def transition(
        self, job_id: str, allowed_from: Collection[JobStatus], make_event: EventFactory
    ) -> tuple[Job, Event] | None:
        allowed = {JobStatus(s) for s in allowed_from}
        query = sa.select(jobs_table).where(_J.id == job_id)
        if not self._sqlite:
            query = query.with_for_update()
        for _ in range(_RACE_RETRIES):
            async with self._write() as conn:
                row = (await conn.execute(query)).mappings().first()
                if row is None:
                    return None
                job = _row_to_job(row)
                if job.status not in allowed:
                    return None
                done = await self._apply(conn, job, make_event)
                if done is not None:
                    return done
        raise StaleJob(job_id)

    async def claim(
        self, kinds: Collection[str], worker_id: str, lease_seconds: float, make_event: EventFactory
    ) -> tuple[Job, Event] | None:
        kinds = list(kinds)
        if not kinds:
            return None
        if self._inline is not None:
            claimed = await self._inline.soon(
                lambda conn: self._claim_inline(conn, kinds, worker_id, lease_seconds, make_event)
            )
            if not isinstance(claimed, inline.Busy):
                return claimed
        query = (
            sa.select(jobs_table)
            .where(_J.status == JobStatus.QUEUED.value, _J.kind.in_(kinds))
            .order_by(_J.created_us, _J.id)
            .limit(1)
        )
        if not self._sqlite:
            query = query.with_for_update(skip_locked=True)
        for _ in range(_RACE_RETRIES):
            async with self._write() as conn:
                row = (await conn.execute(query)).mappings().first()
                if row is None:
                    return None
                job = _row_to_job(row)
                lease = (worker_id, monotonic_us() + int(lease_seconds * 1e6))
                done = await self._apply(conn, job, make_event, lease)
                if done is not None:
                    return done
            # Another process took this one between our read and our write: look again.
        return None

    async def claim_many(
        self,
        kinds: Collection[str],
        worker_id: str,
        lease_seconds: float,
        make_event: EventFactory,
        limit: int,
    ) -> list[tuple[Job, Event]]:
        kinds = list(kinds)
        if self._inline is None or not kinds or limit <= 0:
            return await super().claim_many(kinds, worker_id, lease_seconds, make_event, limit)

        def claim_all(conn: inline.Connection) -> list[tuple[Job, Event]]:
            claimed: list[tuple[Job, Event]] = []
            while len(claimed) < limit:
                one = self._claim_inline(conn, kinds, worker_id, lease_seconds, make_event)
                if one is None:
                    break
                claimed.append(one)
            return claimed

        done = await self._inline.soon(claim_all)
        if isinstance(done, inline.Busy):
            return await super().claim_many(kinds, worker_id, lease_seconds, make_event, limit)
        return done

    async def claim_job(
        self, job_id: str, worker_id: str, lease_seconds: float, make_event: EventFactory
    ) -> tuple[Job, Event] | None:
        query = sa.select(jobs_table).where(_J.id == job_id, _J.status == JobStatus.QUEUED.value)
        if not self._sqlite:
            query = query.with_for_update(skip_locked=True)
        async with self._write() as conn:
            row = (await conn.execute(query)).mappings().first()
            if row is None:
                return None
            lease = (worker_id, monotonic_us() + int(lease_seconds * 1e6))
            return await self._apply(conn, _row_to_job(row), make_event, lease)

    async def renew_leases(
        self,
        job_ids: Collection[str],
        worker_id: str,
        lease_seconds: float,
        *,
        unexpired_at: int | None = None,
    ) -> Renewal:
        wanted = set(job_ids)
        if not wanted:
            return Renewal(set(), set())
        until = monotonic_us() + int(lease_seconds * 1e6)
        mine = sa.and_(_J.id.in_(sorted(wanted)), _J.lease_owner == worker_id)
        if unexpired_at is not None:
            mine = sa.and_(mine, _J.lease_until_us >= unexpired_at)
        async with self._write() as conn:
            if not self._sqlite:
                # Lock the rows in id order first, as a batch of events does (``store/batch.py``):
                # the two updates below would otherwise take the stalled ones first and the rest
                # after, an order that deadlocks against a concurrent batch of the same jobs.
                await conn.execute(sa.select(_J.id).where(mine).order_by(_J.id).with_for_update())
            stalled = await conn.execute(
                jobs_table.update()
                .where(mine, _J.stalled_us.is_not(None))
                .values(lease_until_us=until, stalled_us=None)
                .returning(_J.id)
            )
            unstalled = {row[0] for row in stalled}
            result = await conn.execute(
                jobs_table.update()
                .where(mine)
                .values(lease_until_us=until)
                .returning(_J.id, _J.cancel_requested)
            )
            rows = result.all()
        held = {row[0] for row in rows}
        cancelled = {row[0] for row in rows if row[1]}
        return Renewal(wanted - held, unstalled, cancelled)

    async def announce_stalls(
        self, now_us: int, lease_seconds: float, make_events: StallEvents, limit: int = 100
    ) -> list[tuple[Job, list[Event]]]:
        half = int(lease_seconds * 1e6 / 2)
        query = (
            sa.select(jobs_table)
            .where(
                _J.status == JobStatus.RUNNING.value,
                _J.stalled_us.is_(None),
                _J.lease_until_us <= now_us + half,
            )
            .order_by(_J.lease_until_us, _J.id)
            .limit(limit)
        )
        if not self._sqlite:
            query = query.with_for_update(skip_locked=True)  # another watcher takes the rest
        announced = []
        async with self._write() as conn:
            for row in (await conn.execute(query)).mappings().all():
                job = _row_to_job(row)
                events = make_events(job)
                after = job
                for event in events:
                    after = after.apply(event)
                after = replace(after, seq_reserved=after.seq)
                values = {**_job_state_values(after), "stalled_us": now_us}
                for column in ("status", "lease_owner", "lease_until_us"):
                    values.pop(column, None)
                updated = await conn.execute(
                    jobs_table.update()
                    .where(_J.id == job.id, _J.seq == job.seq, _J.stalled_us.is_(None))
                    .values(values)
                )
                if updated.rowcount != 1:
                    continue
                await self._trim(conn, job.id, after.seq)
                await self._insert_events(conn, events)
                announced.append((after, events))
        return announced

    async def expired_leases(self, now_us: int, limit: int = 100) -> list[Job]:
        query = (
            sa.select(jobs_table)
            .where(_J.status == JobStatus.RUNNING.value, _J.lease_until_us < now_us)
            .order_by(_J.lease_until_us, _J.id)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_row_to_job(row) for row in rows]

    async def running_jobs(self, limit: int = 1000) -> list[Job]:
        query = (
            sa.select(jobs_table)
            .where(_J.status == JobStatus.RUNNING.value)
            .order_by(_J.created_us, _J.id)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_row_to_job(row) for row in rows]

    async def request_cancel(self, job_id: str) -> Job | None:
        async with self._write() as conn:
            await conn.execute(
                jobs_table.update().where(_J.id == job_id).values(cancel_requested=True)
            )
            row = (
                (await conn.execute(sa.select(jobs_table).where(_J.id == job_id)))
                .mappings()
                .first()
            )
        return None if row is None else _row_to_job(row)

    async def events_after(
        self, job_id: str, after_seq: int, limit: int = 1000
    ) -> list[Event] | None:
        query = (
            sa.select(events_table)
            .where(_E.job_id == job_id, _E.seq > after_seq)
            .order_by(_E.seq)
            .limit(max(limit, 0))
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
            events = [_row_to_event(row) for row in rows]
            if events and events[0].seq != after_seq + 1:
                return None
            # A trimmed middle shows as a hole between kept events.
            for before, after in itertools.pairwise(events):
                if after.seq != before.seq + 1:
                    return None
            if limit > 0 and len(events) < limit:
                return events
            # The page is whole, but a hole may lie past it (the memory store looks at every
            # wanted event): the log is whole iff it holds every seq up to its last one.
            count, last = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.max(_E.seq)).where(
                        _E.job_id == job_id, _E.seq > after_seq
                    )
                )
            ).one()
        if count and count != last - after_seq:
            return None
        return events

    async def feed_events(
        self, owner: str | None, after_pos: int, limit: int = 1000
    ) -> list[Event]:
        query = sa.select(events_table).where(_E.pos > after_pos)
        if owner is not None:
            query = query.where(_E.owner == owner)
        query = query.order_by(_E.pos).limit(max(limit, 0))
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_row_to_event(row) for row in rows]

    async def feed_position(self) -> int:
        if self._sqlite:
            query = sa.select(sa.func.max(_E.pos))
        else:
            query = sa.select(_P.value).where(_P.name == _EVENTS_POSITION)
        async with self._read() as conn:
            value = (await conn.execute(query)).scalar_one_or_none()
        return int(value or 0)

    async def changed_jobs(
        self, owner: str | None, after_pos: int, *, after_id: str = "", limit: int = 500
    ) -> list[Job]:
        changed = sa.select(_E.job_id).where(_E.pos > after_pos, _E.job_id > after_id)
        if owner is not None:
            changed = changed.where(_E.owner == owner)
        ids = changed.distinct().order_by(_E.job_id).limit(max(limit, 0)).scalar_subquery()
        query = sa.select(jobs_table).where(_J.id.in_(ids)).order_by(_J.id)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_row_to_job(row) for row in rows]

    async def count_by_status(self) -> dict[tuple[str, JobStatus], int]:
        # One pass over the (status, kind, created) index, not over the rows.
        query = sa.select(_J.kind, _J.status, sa.func.count()).group_by(_J.kind, _J.status)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return {(kind, JobStatus(status)): int(count) for kind, status, count in rows}

    async def record_steps(self, kind: str, bucket: str, durations: Sequence[float]) -> None:
        if self._inline is not None:
            stamp, runs_kept = _to_us(datetime.now(UTC)), self.max_step_runs
            floats = [float(d) for d in durations]
            done = await self._inline.soon(
                lambda conn: inline.record_steps(conn, kind, bucket, stamp, floats, runs_kept)
            )
            if not isinstance(done, inline.Busy):
                return
        runs = step_runs_table.c
        pair = sa.and_(runs.kind == kind, runs.bucket == bucket)
        newest = (
            sa.select(runs.id)
            .where(pair)
            .order_by(runs.id.desc())
            .limit(self.max_step_runs)
            .subquery("newest")
        )
        oldest_kept = sa.select(sa.func.min(newest.c.id)).scalar_subquery()
        async with self._write() as conn:
            await conn.execute(
                step_runs_table.insert().values(
                    kind=kind,
                    bucket=bucket,
                    recorded_us=_to_us(datetime.now(UTC)),
                    durations=[float(d) for d in durations],
                )
            )
            await conn.execute(step_runs_table.delete().where(pair, runs.id < oldest_kept))

    async def step_history(self, kind: str, bucket: str, limit: int = 20) -> list[list[float]]:
        if self._inline is not None:
            found = self._inline.read(lambda conn: inline.step_history(conn, kind, bucket, limit))
            if not isinstance(found, inline.Busy):
                return found
        runs = step_runs_table.c
        query = (
            sa.select(runs.durations)
            .where(runs.kind == kind, runs.bucket == bucket)
            .order_by(runs.id.desc())
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [[float(d) for d in row[0]] for row in rows]
