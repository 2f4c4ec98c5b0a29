"""``append_many`` on the drivers themselves: the store's hot path, written by hand.

Every running job's events go through ``append_many`` (the worker's group commit), so its cost
per transaction bounds how fast a job's progress reaches readers and how many jobs one process
can run. Through SQLAlchemy's async layer a transaction of six statements cost about 2.4 ms of
CPU (aiosqlite runs each statement on its thread, behind a greenlet switch); on the drivers it
is a fraction of that (docs/benchmarks.md has both):

- SQLite: one ``sqlite3`` connection of its own in one thread; the whole transaction is one
  call into that thread.
- PostgreSQL: asyncpg, on the SQLAlchemy connection's own driver connection (the transaction
  SQLAlchemy opened); the running jobs' rows and the events each in one statement over arrays
  (``unnest``), the rare rest with ``executemany``.

What to write is decided once, in ``plan`` (pure Python, shared by both and by the SQLAlchemy
path that serves an in-memory SQLite database): which batches are still their writer's, the
job rows, the events with their positions, the trims and the refunds.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jobstream import codec
from jobstream.models import Event, JobStatus
from jobstream.store.base import REFUNDED_STATUSES, Append, Rebase

T = TypeVar("T")

STATE_COLUMNS = (
    "status",
    "state",
    "progress",
    "current_step",
    "total_steps",
    "step_name",
    "message",
    "eta_seconds",
    "result",
    "artifact_path",
    "artifact_media_type",
    "artifact_filename",
    "error",
    "started_us",
    "updated_us",
    "finished_us",
    "seq",
    "seq_reserved",
    "attempts",
    "lease_owner",
    "lease_until_us",
    "stalled_us",
)
"""The job columns a batch writes: everything but the identity, the cancel flag and the cost."""
RUNNING_COLUMNS = tuple(
    c for c in STATE_COLUMNS if c not in ("status", "lease_owner", "lease_until_us", "stalled_us")
)
"""What a batch of a job that stays running writes: not the indexed columns it leaves as they
are (SQLite rewrites an index entry whose column is SET, even to its value: two pages more in
the WAL per transaction)."""
_CHECKED = ("status", "seq", "lease_owner", "lease_until_us")
"""The stored columns ``plan`` decides by."""
CHECKPOINT_EVERY = 1000
"""Inline commits between two checkpoints of the WAL (on the writer's thread)."""


@dataclass(slots=True)
class Plan:
    """What one ``append_many`` transaction writes."""

    outcome: list[bool | Rebase] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Job rows that change status: ``STATE_COLUMNS`` plus ``id``."""
    running: list[dict[str, Any]] = field(default_factory=list)
    """Job rows that stay running: ``RUNNING_COLUMNS`` plus ``id``."""
    events: list[Event] = field(default_factory=list)
    trims: list[tuple[str, int]] = field(default_factory=list)
    """(job id, highest seq that may go) for jobs whose log passed the bound."""
    refunds: list[tuple[str, str]] = field(default_factory=list)
    """(job id, owner) of jobs this transaction ends failed or cancelled."""


def plan(
    stored: dict[str, dict[str, Any]],
    batches: Sequence[Append],
    state_values: Callable[[Any], dict[str, Any]],
    max_events_per_job: int,
) -> Plan:
    """Decide, from the stored ``id -> {status, seq, lease_owner, lease_until_us}``, which
    batches are their writer's, and what to write for them."""
    out = Plan()
    for batch in batches:
        job, new = batch.job, batch.events
        row = stored.get(job.id)
        first = new[0].seq if new else job.seq
        running = row is not None and row["status"] == JobStatus.RUNNING.value
        leased = batch.worker is None or (row is not None and row["lease_owner"] == batch.worker)
        ours = running and leased and row is not None and row["seq"] == first - 1
        if not ours and running and leased and batch.worker is not None and row is not None:
            out.outcome.append(Rebase(row["seq"]))  # moved on by a stall notice: renumber
            continue
        out.outcome.append(ours)
        if not ours or row is None:
            continue
        values = state_values(job)
        # The stored cancel flag is not written: a cancel request that lands meanwhile stays.
        values["stalled_us"] = None
        if job.status.terminal:
            values["lease_owner"] = values["lease_until_us"] = None
        else:
            values["lease_owner"], values["lease_until_us"] = (
                row["lease_owner"],
                row["lease_until_us"],
            )
        values["id"] = job.id
        (out.running if job.status.value == row["status"] else out.rows).append(values)
        out.events.extend(new)
        row["seq"], row["status"] = job.seq, job.status.value
        floor = job.seq - max_events_per_job
        if floor > 0:
            out.trims.append((job.id, floor))
        if job.status in REFUNDED_STATUSES:  # the stored job was running: this ends it
            out.refunds.append((job.id, job.owner))
    return out


def number(events: list[Event], top: int) -> None:
    """Give ``events`` the positions ending at ``top`` (the counter after this transaction)."""
    for offset, event in enumerate(events, start=top - len(events) + 1):
        event.pos = offset


def _row_params(row: dict[str, Any], columns: tuple[str, ...] = STATE_COLUMNS) -> list[Any]:
    params = [row[column] for column in columns]
    params[columns.index("result")] = codec.dumps_str(row["result"])
    for name in ("progress", "eta_seconds"):
        at = columns.index(name)
        if params[at] is not None:
            params[at] = float(params[at])
    params.append(row["id"])
    return params


def _event_params(event: Event) -> tuple[Any, ...]:
    return (
        event.job_id,
        event.seq,
        event.owner,
        event.type.value,
        event.ts_us,
        codec.dumps_str(event.data),
        event.pos,
    )


_SET = ", ".join(f"{column} = ?" for column in STATE_COLUMNS)
_SET_RUNNING = ", ".join(f"{column} = ?" for column in RUNNING_COLUMNS)
_INSERT = (
    'INSERT INTO jobstream_events (job_id, seq, owner, type, "cursor", data, pos) '
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_TRIM = "DELETE FROM jobstream_events WHERE job_id = ? AND seq <= ? AND type IN ('progress', 'log')"
_REFUND = (
    "UPDATE jobstream_accounts SET credits = credits + "
    "(SELECT cost FROM jobstream_jobs WHERE id = ?) "
    "WHERE sub = ? AND (SELECT cost FROM jobstream_jobs WHERE id = ?) > 0"
)
_COUNT = "UPDATE jobstream_positions SET value = value + ? WHERE name = 'events' RETURNING value"
_TOP = "SELECT COALESCE(MAX(pos), 0) FROM jobstream_events"
"""SQLite's writers take turns (``BEGIN IMMEDIATE``), so the next position is the highest
stored one plus one: read from the end of an index, where a counter row would be one more
page written per transaction."""


def _connect(path: str, busy_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SQLiteBatchWriter:
    """``append_many`` for a SQLite file, on connections of its own.

    The transaction normally runs on the event loop's thread, inline (``append_many_soon``):
    a few statements into SQLite's page cache (WAL, ``synchronous=NORMAL``: no fsync at
    commit), about 0.15 ms. Run on a thread of its own instead, a commit waited for the GIL
    behind a busy loop for 1.5-3 ms, and a report took two such round trips to reach its
    streams (docs/benchmarks.md). The inline connection never waits for a lock
    (``busy_timeout=0``) and never checkpoints (that would fsync). While this process has a
    write transaction open elsewhere, the batch waits for it to end and then goes inline; when
    another process holds the database, the batch goes to the thread, whose connection waits
    for the lock and runs the checkpoints."""

    def __init__(
        self,
        path: str,
        state_values: Callable[[Any], dict[str, Any]],
        max_events_per_job: Callable[[], int],
    ) -> None:
        self._path = path
        self._state_values = state_values
        self._max_events = max_events_per_job
        self._inline: sqlite3.Connection | None = None
        self._inline_commits = 0
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], Any], Callable[[Any, BaseException | None], None]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, name="jobstream-sqlite-writer", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        conn = _connect(self._path, 5000)
        self._conn = conn
        try:
            while (item := self._jobs.get()) is not None:
                work, done = item
                try:
                    value, error = work(), None
                except BaseException as exc:
                    value, error = None, exc
                done(value, error)
        finally:
            conn.close()

    async def _call(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(value: Any, error: BaseException | None) -> None:
            if not future.done():
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(value)

        def done(value: Any, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                loop.call_soon_threadsafe(settle, value, error)

        self._jobs.put((work, done))
        return await future

    async def append_many(self, batches: Sequence[Append]) -> list[bool | Rebase]:
        """On the writer's thread (it may wait for the database's lock)."""
        return await self._call(lambda: self._transaction(self._conn, batches))

    def try_inline(self, batches: Sequence[Append]) -> list[bool | Rebase] | None:
        """The transaction on the calling (loop) thread, now; ``None`` if the database is
        locked (nothing was written: try ``append_many``). The caller makes sure no other
        transaction of this process is open meanwhile."""
        conn = self._inline
        if conn is None:
            conn = self._inline = _connect(self._path, 0)
            conn.execute("PRAGMA wal_autocheckpoint=0")
        try:
            outcome = self._transaction(conn, batches)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None
            raise
        self._inline_commits += 1
        if self._inline_commits % CHECKPOINT_EVERY == 0:
            self._jobs.put((self._checkpoint, lambda value, error: None))
        return outcome

    def _checkpoint(self) -> None:
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _transaction(
        self, conn: sqlite3.Connection, batches: Sequence[Append]
    ) -> list[bool | Rebase]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            outcome = self._write(conn, batches)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return outcome

    def _write(self, conn: sqlite3.Connection, batches: Sequence[Append]) -> list[bool | Rebase]:
        ids = sorted({batch.job.id for batch in batches})
        marks = ", ".join("?" * len(ids))
        found = conn.execute(
            "SELECT id, status, seq, lease_owner, lease_until_us FROM jobstream_jobs "
            f"WHERE id IN ({marks})",
            ids,
        )
        stored = {row[0]: dict(zip(_CHECKED, row[1:], strict=True)) for row in found}
        todo = plan(stored, batches, self._state_values, self._max_events())
        if todo.rows:
            conn.executemany(
                f"UPDATE jobstream_jobs SET {_SET} WHERE id = ?",
                [_row_params(row) for row in todo.rows],
            )
        if todo.running:
            conn.executemany(
                f"UPDATE jobstream_jobs SET {_SET_RUNNING} WHERE id = ?",
                [_row_params(row, RUNNING_COLUMNS) for row in todo.running],
            )
        if todo.trims:
            conn.executemany(_TRIM, todo.trims)
        for job_id, owner in todo.refunds:
            conn.execute(_REFUND, (job_id, owner, job_id))
        if todo.events:
            (top,) = conn.execute(_TOP).fetchone()
            number(todo.events, int(top) + len(todo.events))
            conn.executemany(_INSERT, [_event_params(e) for e in todo.events])
        return todo.outcome

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)


def _numbered(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1, $2, ...``."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]


_PG_UPDATE = _numbered(f"UPDATE jobstream_jobs SET {_SET} WHERE id = ?")
_PG_TRIM = _numbered(_TRIM)
_PG_REFUND = (
    "UPDATE jobstream_accounts SET credits = credits + "
    "(SELECT cost FROM jobstream_jobs WHERE id = $1) "
    "WHERE sub = $2 AND (SELECT cost FROM jobstream_jobs WHERE id = $1) > 0"
)
_PG_COUNT = _numbered(_COUNT)
_PG_TYPES = {
    "status": "text",
    "state": "text",
    "progress": "float8",
    "current_step": "int4",
    "total_steps": "int4",
    "step_name": "text",
    "message": "text",
    "eta_seconds": "float8",
    "result": "text",
    "artifact_path": "text",
    "artifact_media_type": "text",
    "artifact_filename": "text",
    "error": "text",
    "started_us": "int8",
    "updated_us": "int8",
    "finished_us": "int8",
    "seq": "int4",
    "seq_reserved": "int4",
    "attempts": "int4",
    "lease_owner": "text",
    "lease_until_us": "int8",
    "stalled_us": "int8",
}
"""Each job column's type as an array element (``result``: JSON text, cast back when set)."""
_PG_UPDATE_RUNNING_ALL = (
    "UPDATE jobstream_jobs AS j SET "
    + ", ".join(f"{c} = u.{c}::json" if c == "result" else f"{c} = u.{c}" for c in RUNNING_COLUMNS)
    + " FROM unnest("
    + ", ".join(f"${i}::{_PG_TYPES[c]}[]" for i, c in enumerate(RUNNING_COLUMNS, start=1))
    + f", ${len(RUNNING_COLUMNS) + 1}::text[]) AS u({', '.join(RUNNING_COLUMNS)}, id) "
    "WHERE j.id = u.id"
)
"""The running jobs' rows in one statement: one array per column (``executemany`` costs the
server a statement per row)."""
_PG_INSERT_ALL = (
    'INSERT INTO jobstream_events (job_id, seq, owner, type, "cursor", data, pos) '
    "SELECT job_id, seq, owner, type, ts, data::json, pos FROM unnest("
    "$1::text[], $2::int4[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::int8[]"
    ") AS u(job_id, seq, owner, type, ts, data, pos)"
)
"""Every event of the transaction in one statement, likewise."""
_PG_CHECK = (
    "SELECT id, status, seq, lease_owner, lease_until_us FROM jobstream_jobs "
    "WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows of parameters as one list per column (the arrays ``unnest`` takes)."""
    return [list(column) for column in zip(*rows, strict=True)]


async def append_many_postgres(
    pg: Any,
    batches: Sequence[Append],
    state_values: Callable[[Any], dict[str, Any]],
    max_events_per_job: int,
) -> list[bool | Rebase]:
    """``append_many`` on an asyncpg connection already in a transaction. The job rows are
    locked in id order (``FOR UPDATE``), so concurrent writers never deadlock; the position
    counter is updated last, so its row is held only until the commit that follows."""
    ids = sorted({batch.job.id for batch in batches})
    stored = {row["id"]: dict(row) for row in await pg.fetch(_PG_CHECK, ids)}
    todo = plan(stored, batches, state_values, max_events_per_job)
    if todo.rows:
        await pg.executemany(_PG_UPDATE, [_row_params(row) for row in todo.rows])
    if todo.running:
        rows = [_row_params(row, RUNNING_COLUMNS) for row in todo.running]
        await pg.execute(_PG_UPDATE_RUNNING_ALL, *_columns(rows))
    if todo.trims:
        await pg.executemany(_PG_TRIM, todo.trims)
    for job_id, owner in todo.refunds:
        await pg.execute(_PG_REFUND, job_id, owner)
    if todo.events:
        top = await pg.fetchval(_PG_COUNT, len(todo.events))
        number(todo.events, int(top))
        events = [_event_params(e) for e in todo.events]
        await pg.execute(_PG_INSERT_ALL, *_columns(events))
    return todo.outcome


__all__ = ["STATE_COLUMNS", "Plan", "SQLiteBatchWriter", "append_many_postgres", "number", "plan"]
