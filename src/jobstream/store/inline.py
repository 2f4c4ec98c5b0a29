"""A job's own writes on a SQLite file, inline on the event loop's thread: its submit, its
claim and its step durations (the running job's events go through ``batch.py``).

Through SQLAlchemy's async layer each statement is a round trip to aiosqlite's thread, and under
load each round trip waits for the GIL behind the busy loop; those transactions take turns
behind the store's write lock, so a job's three (create, claim, record its steps) bounded the
embedded server to 60-80 jobs/s whatever the CPU left (docs/benchmarks.md, "Job throughput").
Here they are a group commit on a ``sqlite3`` connection of this module's own: what a loop turn
asks for (``soon``) is written in the next turn in one transaction, each in a savepoint, into
SQLite's page cache (WAL, ``synchronous=NORMAL``: no fsync at commit), and each caller resumes
once that transaction committed.

The connection never waits for SQLite's lock (``busy_timeout=0``) and never checkpoints on the
loop's thread. When the database is busy (another process writes, or this one has a SQLAlchemy
transaction open) the group is tried again every millisecond for up to a second, then answers
``BUSY`` having written nothing, and the store takes its SQLAlchemy path, which waits. Every
``CHECKPOINT_EVERY`` commits a passive checkpoint runs on a thread, on a connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from jobstream import codec
from jobstream.models import Event
from jobstream.store.base import InsufficientCredits

T = TypeVar("T")
Connection = sqlite3.Connection
IntegrityError = sqlite3.IntegrityError


class Busy:
    """The database was locked: nothing was written."""


BUSY: Final = Busy()
CHECKPOINT_EVERY = 1000
RETRY_INTERVAL = 0.001
RETRY_SECONDS = 1.0
"""How long a group waits for a busy database, retrying every ``RETRY_INTERVAL``, before its
writes take the SQLAlchemy path (which waits for the lock up to ``busy_timeout``)."""

_EVENT_INSERT = (
    'INSERT INTO jobstream_events (job_id, seq, owner, type, "cursor", data, pos) '
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_TOP = "SELECT COALESCE(MAX(pos), 0) FROM jobstream_events"
_JSON_COLUMNS = frozenset({"params", "result"})


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


class SQLiteInline:
    """Transactions and reads on the loop's thread; ``BUSY`` instead of waiting for a lock."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._commits = 0
        self._checkpoint: asyncio.Future[None] | None = None
        self._queued: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flush: asyncio.Handle | None = None
        self._busy_since: float | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._conn = conn
        return self._conn

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T | Busy:
        """``work`` in one write transaction, committed unless it raises (then rolled back and
        raised); ``BUSY`` if the database's write lock is taken."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _locked(exc):
                return BUSY
            raise
        try:
            value = work(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _locked(exc):
                return BUSY
            raise
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0:
            self._start_checkpoint()
        return value

    def soon(self, work: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T | Busy]:
        """``work`` in the next loop turn's transaction, with every other ``soon`` of this turn
        (group commit: one commit for the submits, claims and step records of a turn), each in
        a savepoint of its own: one that raises is rolled back alone, and its future raises.
        The future is ``BUSY`` if the database's write lock was taken (nothing was written)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T | Busy] = loop.create_future()
        self._queued.append((work, future))
        if self._flush is None:
            self._flush = loop.call_soon(self._commit_queued)
        return future

    def _commit_queued(self, final: bool = False) -> None:
        self._flush = None
        items, self._queued = self._queued, []
        try:
            outcomes = self.write(lambda conn: [_in_savepoint(conn, work) for work, _ in items])
        except Exception as exc:  # the commit failed: nothing was written
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        loop = asyncio.get_running_loop()
        if isinstance(outcomes, Busy) and not final:
            # Another writer holds the lock for a moment (a SQLAlchemy transaction of this
            # process: lease upkeep, a cancel): try again shortly, with what is asked meanwhile.
            # Handing these to the SQLAlchemy path would queue them all behind the store's
            # write lock, and every commit of this path would then find the database busy too.
            now = loop.time()
            if self._busy_since is None:
                self._busy_since = now
            if now - self._busy_since < RETRY_SECONDS:
                self._queued = [*items, *self._queued]
                self._flush = loop.call_later(RETRY_INTERVAL, self._commit_queued)
                return
        self._busy_since = None
        for index, (_, future) in enumerate(items):
            if future.done():  # its caller was cancelled (what it wrote stays written)
                continue
            if isinstance(outcomes, Busy):
                future.set_result(BUSY)
                continue
            value, error = outcomes[index]
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T | Busy:
        try:
            return work(self._connection())
        except sqlite3.OperationalError as exc:
            if _locked(exc):
                return BUSY
            raise

    def _start_checkpoint(self) -> None:
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        with contextlib.suppress(RuntimeError):  # no running loop: the next writer's turn
            loop = asyncio.get_running_loop()
            self._checkpoint = loop.run_in_executor(None, self._run_checkpoint)

    def _run_checkpoint(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    async def close(self) -> None:
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        if self._flush is not None:
            self._flush.cancel()
            self._commit_queued(final=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _in_savepoint(
    conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]
) -> tuple[T | None, Exception | None]:
    conn.execute("SAVEPOINT jobstream_item")
    try:
        value = work(conn)
    except sqlite3.OperationalError as exc:
        if _locked(exc):
            raise  # the whole transaction answers BUSY
        conn.execute("ROLLBACK TO jobstream_item")
        conn.execute("RELEASE jobstream_item")
        return None, exc
    except Exception as exc:
        conn.execute("ROLLBACK TO jobstream_item")
        conn.execute("RELEASE jobstream_item")
        return None, exc
    conn.execute("RELEASE jobstream_item")
    return value, None


# -- statements (inside ``SQLiteInline.write``/``soon``/``read``) -----------------------------


def insert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    """Insert ``row`` (JSON columns encoded with the project codec, as SQLAlchemy does)."""
    names = list(row)
    values = [codec.dumps_str(row[n]) if n in _JSON_COLUMNS else row[n] for n in names]
    columns = ", ".join(names)
    marks = ", ".join("?" * len(names))
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)


def update_job(
    conn: sqlite3.Connection, job_id: str, status: str, seq: int, values: dict[str, Any]
) -> bool:
    """Update the job row if it is still at ``status`` and ``seq``."""
    names = list(values)
    params = [codec.dumps_str(values[n]) if n in _JSON_COLUMNS else values[n] for n in names]
    assignments = ", ".join(f"{n} = ?" for n in names)
    cursor = conn.execute(
        f"UPDATE jobstream_jobs SET {assignments} WHERE id = ? AND status = ? AND seq = ?",
        [*params, job_id, status, seq],
    )
    return cursor.rowcount == 1


def oldest_queued(conn: sqlite3.Connection, kinds: Sequence[str]) -> dict[str, Any] | None:
    """The oldest queued job of ``kinds`` (by creation time, then id) as a column -> value
    mapping (JSON decoded).

    One ``ORDER BY created_us, id`` over ``kind IN (...)`` sorts every queued row of those kinds
    (the index is on status, kind and creation time, not id): a claim cost as much as the
    queue was long. Instead: each kind's oldest creation time from the end of its index range,
    then the smallest id at the oldest of those times."""
    oldest: int | None = None
    for kind in kinds:
        found = conn.execute(
            "SELECT created_us FROM jobstream_jobs WHERE status = 'queued' AND kind = ? "
            "ORDER BY created_us LIMIT 1",
            (kind,),
        ).fetchone()
        if found is not None and (oldest is None or found[0] < oldest):
            oldest = found[0]
    if oldest is None:
        return None
    marks = ", ".join("?" * len(kinds))
    cursor = conn.execute(
        f"SELECT * FROM jobstream_jobs WHERE status = 'queued' AND kind IN ({marks}) "
        "AND created_us = ? ORDER BY id LIMIT 1",
        [*kinds, oldest],
    )
    found = cursor.fetchone()
    if found is None:
        return None
    row = {d[0]: value for d, value in zip(cursor.description, found, strict=True)}
    for name in _JSON_COLUMNS:
        row[name] = json_value(row[name])
    return row


def json_value(value: Any) -> Any:
    """A JSON column's value (SQLite gives the column NUMERIC affinity: a scalar such as
    ``1`` comes back as a number, not as JSON text)."""
    if value is None or isinstance(value, int | float):
        return value
    return codec.loads(value)


def insert_events(conn: sqlite3.Connection, events: Sequence[Event]) -> None:
    """Insert ``events`` with the next positions (writers take turns: the highest stored
    position plus one)."""
    if not events:
        return
    (top,) = conn.execute(_TOP).fetchone()
    for offset, event in enumerate(events, start=int(top) + 1):
        event.pos = offset
    conn.executemany(
        _EVENT_INSERT,
        [
            (e.job_id, e.seq, e.owner, e.type.value, e.ts_us, codec.dumps_str(e.data), e.pos)
            for e in events
        ],
    )


def trim(conn: sqlite3.Connection, job_id: str, floor: int) -> None:
    """Drop the job's progress and log events at or below ``floor`` (if it is above 0)."""
    if floor > 0:
        conn.execute(
            "DELETE FROM jobstream_events WHERE job_id = ? AND seq <= ? "
            "AND type IN ('progress', 'log')",
            (job_id, floor),
        )


def debit(conn: sqlite3.Connection, owner: str, kind: str, cost: int, initial: int) -> None:
    """Take ``cost`` from the owner's account (opened with ``initial`` credits), or raise
    ``InsufficientCredits``."""
    conn.execute(
        "INSERT INTO jobstream_accounts (sub, credits) VALUES (?, ?) ON CONFLICT (sub) DO NOTHING",
        (owner, initial),
    )
    debited = conn.execute(
        "UPDATE jobstream_accounts SET credits = credits - ? WHERE sub = ? AND credits >= ?",
        (cost, owner, cost),
    )
    if debited.rowcount != 1:
        (balance,) = conn.execute(
            "SELECT credits FROM jobstream_accounts WHERE sub = ?", (owner,)
        ).fetchone()
        raise InsufficientCredits(owner, kind, cost, int(balance))


def refund(conn: sqlite3.Connection, job_id: str, owner: str) -> None:
    """Give back the job's stored cost."""
    conn.execute(
        "UPDATE jobstream_accounts SET credits = credits + "
        "(SELECT cost FROM jobstream_jobs WHERE id = ?) "
        "WHERE sub = ? AND (SELECT cost FROM jobstream_jobs WHERE id = ?) > 0",
        (job_id, owner, job_id),
    )


def record_steps(
    conn: sqlite3.Connection,
    kind: str,
    bucket: str,
    recorded_us: int,
    durations: list[float],
    keep: int,
) -> None:
    """Add a run's step durations; only the newest ``keep`` runs of the pair stay."""
    conn.execute(
        "INSERT INTO jobstream_step_runs (kind, bucket, recorded_us, durations) "
        "VALUES (?, ?, ?, ?)",
        (kind, bucket, recorded_us, codec.dumps_str(durations)),
    )
    conn.execute(
        "DELETE FROM jobstream_step_runs WHERE kind = ? AND bucket = ? AND id < "
        "(SELECT MIN(id) FROM (SELECT id FROM jobstream_step_runs WHERE kind = ? "
        "AND bucket = ? ORDER BY id DESC LIMIT ?))",
        (kind, bucket, kind, bucket, keep),
    )


def step_history(conn: sqlite3.Connection, kind: str, bucket: str, limit: int) -> list[list[float]]:
    """The newest ``limit`` runs' step durations of the pair, newest first."""
    rows = conn.execute(
        "SELECT durations FROM jobstream_step_runs WHERE kind = ? AND bucket = ? "
        "ORDER BY id DESC LIMIT ?",
        (kind, bucket, limit),
    ).fetchall()
    return [[float(d) for d in json_value(row[0])] for row in rows]


__all__ = [
    "BUSY",
    "CHECKPOINT_EVERY",
    "Busy",
    "Connection",
    "IntegrityError",
    "SQLiteInline",
    "debit",
    "insert_events",
    "insert_row",
    "json_value",
    "oldest_queued",
    "record_steps",
    "refund",
    "step_history",
    "trim",
    "update_job",
]
