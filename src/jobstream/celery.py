"""Jobs on Celery: the server sends each new job to a Celery broker, Celery workers run it.

With ``JOBSTREAM_CELERY_BROKER_URL`` set, ``POST /api/v1/jobs`` stores the job (its first event,
``queued``) and then sends the task ``jobstream.run`` with the job's id as the task id and its
only argument, to the queue ``JOBSTREAM_CELERY_QUEUE``. The message holds nothing else: the
store is the job's one record, the broker only says "run this one now".

``jobstream worker --celery`` (or ``register_kinds`` on an application's own Celery app) runs
that task: each worker process keeps a jobstream runtime of its own (``WorkerRuntime``: the
store and bus of the settings and a ``WorkerPool(claims=False)`` on an event loop in a thread of
its own) and hands it the job (``WorkerPool.run_one``), so a kind's handler runs exactly as in
the embedded pool: the same ``JobContext``, leases, cancel checkpoints and stall notices.

Delivery and the lease, together:

- The task is acknowledged late and rejected when its worker process is lost
  (``acks_late``, ``reject_on_worker_lost``), so the broker delivers it again when a worker
  dies. A delivery claims the job only if it is ``queued`` (one conditional write), so a
  second delivery of a job that runs, ran, or still holds a dead worker's lease does nothing.
- A dead worker's job is recovered by whichever process's lease watcher sees its lease expire
  (server instances and Celery workers alike), by the kind's ``on_interrupt`` policy; a job put
  back in the queue is sent to Celery again by that process. One send per ``queued`` period,
  and a claim per run, so a job runs again exactly once, and never twice at once.
- Cancel: a queued job is cancelled in the store (no delivery can claim it any more) and its
  task revoked; a running one gets the store's cancel flag and the bus's control message, which
  a Celery worker's runtime hears at once on a network bus; on ``memory://`` (no bus between
  processes) it reads its running jobs' flags from the store every half second instead.

What the broker holds is one small message per job sent and not yet acknowledged; what is lost
when the broker dies is the "run now" of queued jobs (they stay ``queued`` in the store until
sent again). The result backend is not used by ``jobstream.run``.

Pools: ``prefork`` (the default: one runtime per child process, made after the fork),
``threads`` and ``solo``. ``gevent`` and ``eventlet`` are refused: they patch sockets and
threads under the runtime's asyncio loop and its drivers.

A plain task of an application's own Celery app reports as a jobstream job with
``base=JobTask``: the task's request id is the job's id, ``self.job`` its ``JobContext``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from celery import Celery, Task
from celery import signals as celery_signals
from celery.exceptions import Retry

from jobstream import codec
from jobstream.bus import EventBus, create_bus
from jobstream.models import Event, EventType, Job, JobStatus, utcnow
from jobstream.settings import Settings
from jobstream.store import JobStore, create_store
from jobstream.worker.context import JobCancelled, JobContext
from jobstream.worker.pool import WorkerPool
from jobstream.worker.registry import Registry

log = logging.getLogger(__name__)

T = TypeVar("T")

TASK_NAME = "jobstream.run"
SUPPORTED_POOLS = ("prefork", "threads", "solo")
CANCEL_POLL_SECONDS = 0.5
PLAIN_TASK_OWNER = "celery"


def celery_app(settings: Settings) -> Celery:
    """jobstream's own Celery app on ``JOBSTREAM_CELERY_BROKER_URL``, with the kinds' task."""
    if not settings.celery_broker_url:
        raise ValueError("JOBSTREAM_CELERY_BROKER_URL is not set")
    app = Celery("jobstream", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_default_queue=settings.celery_queue,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    register_kinds(app, settings)
    return app


def register_kinds(
    app: Celery, settings: Settings | None = None, registry: Registry | None = None
) -> Task:
    """Register the task that runs jobstream's kinds (``jobstream.run``) on ``app``: a Celery
    app of jobstream's own or an application's. Returns the task."""
    app.conf.setdefault("jobstream_settings", settings)
    app.conf.setdefault("jobstream_registry", registry)

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_NAME,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
    )
    def run(task: Task, job_id: str) -> str | None:
        runtime = worker_runtime(task.app)
        job = runtime.call(runtime.pool.run_one(job_id))
        return job.status.value if job is not None else None

    def warm_up(**_: Any) -> None:
        # A prefork child makes its runtime as it starts, in the background (the signal's
        # handlers must return quickly), rather than when its first job arrives.
        threading.Thread(target=_start_quietly, args=(app,), daemon=True).start()

    celery_signals.worker_process_init.connect(warm_up, weak=False)
    return run


class CeleryDispatcher:
    """The server's side: send a queued job to Celery, revoke a cancelled one (each call off
    the event loop: kombu's client blocks)."""

    def __init__(self, app: Celery, queue: str, registry: Registry) -> None:
        self.app = app
        self.queue = queue
        self.registry = registry

    def send_now(self, job: Job) -> None:
        self.app.send_task(TASK_NAME, args=[job.id], task_id=job.id, queue=self.queue)

    async def send(self, job: Job) -> None:
        await asyncio.to_thread(self.send_now, job)

    async def requeued(self, job: Job) -> None:
        """A recovered job back in the queue: send it again (kinds this registry runs only: a
        plain task's job is delivered again by its broker, an external kind's is claimed over
        HTTP)."""
        if job.kind in self.registry and not self.registry.is_external(job.kind):
            await self.send(job)

    async def revoke(self, job_id: str) -> None:
        await asyncio.to_thread(self.app.control.revoke, job_id)

    def _ping(self) -> None:
        with self.app.pool.acquire(block=True, timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    async def ping(self) -> None:
        """Raise if the broker cannot be reached (``/readyz``)."""
        await asyncio.to_thread(self._ping)


# -- the worker side: one jobstream runtime per worker process -------------------------------


class WorkerRuntime:
    """The store, bus and ``WorkerPool(claims=False)`` of one Celery worker process, on an
    event loop running in a daemon thread; Celery's task threads call into it with ``call``."""

    def __init__(self, settings: Settings, registry: Registry, app: Celery) -> None:
        self.settings = settings
        self.registry = registry
        self.store: JobStore = create_store(settings.resolved_store_url)
        self.store.max_events_per_job = settings.max_events_per_job
        self.store.initial_credits = settings.initial_credits
        self.bus: EventBus = create_bus(
            settings.bus_url, prefix=settings.redis_prefix, events=False
        )
        self.dispatcher = CeleryDispatcher(app, settings.celery_queue, registry)
        self.pool = WorkerPool(
            store=self.store,
            bus=self.bus,
            registry=registry,
            data_dir=settings.data_dir,
            concurrency=1_000_000,  # Celery decides how many run at once
            lease_seconds=settings.lease_seconds,
            shutdown_grace=settings.shutdown_grace_seconds,
            claims=False,
            on_requeued=self.dispatcher.requeued,
            cancel_poll_seconds=CANCEL_POLL_SECONDS if _local_bus(settings.bus_url) else None,
        )
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="jobstream-runtime", daemon=True
        )

    def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        self.call(self._start())
        log.info("jobstream runtime %s running (pid %d)", self.pool.worker_id, os.getpid())

    async def _start(self) -> None:
        await self.store.start()
        await self.bus.start()
        await self.pool.start()

    def stop(self) -> None:
        try:
            self.call(self._stop(), timeout=self.settings.shutdown_grace_seconds + 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)

    async def _stop(self) -> None:
        try:
            await self.pool.stop()
        finally:
            try:
                await self.bus.close()
            finally:
                await self.store.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the runtime's loop and wait for it (from any other thread)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    # -- plain tasks reporting as jobs --------------------------------------------------------

    async def begin(
        self, job_id: str, kind: str, params: dict[str, Any], owner: str, redelivered: bool
    ) -> JobContext | None:
        """The context of a plain task's job, made queued if it is new and claimed here. A job
        still running is waited for: 10 s (a retry's next attempt that came before the last
        attempt's re-queue was stored), or 1.5 leases for a redelivered task (its dead worker's
        lease is recovered meanwhile). ``None``: the job finished or runs elsewhere."""
        if await self.store.get(job_id) is None:
            now = utcnow()
            job = Job(
                id=job_id, kind=kind, owner=owner, params=params, created_at=now, updated_at=now
            )
            event = Event(
                job_id=job_id,
                owner=owner,
                seq=1,
                type=EventType.STATUS_CHANGE,
                data={
                    "old_status": None,
                    "new_status": "queued",
                    "kind": kind,
                    "created_at": job.to_public()["created_at"],
                },
            )
            job = job.apply(event)
            try:
                await self.store.create(job, event)
                await self.bus.publish([event])
            except Exception:
                if await self.store.get(job_id) is None:
                    raise
        # Still running: a retry's next attempt that came before the last one's re-queue was
        # stored, or a delivery after a worker died, before its lease is recovered. Wait.
        wait = self.settings.lease_seconds * 1.5 + 5 if redelivered else 10.0
        deadline = time.monotonic() + wait
        while True:
            ctx = await self.pool.attach(job_id)
            if ctx is not None:
                return ctx
            job_now = await self.store.get(job_id)
            if job_now is None or job_now.status is not JobStatus.RUNNING:
                return None
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.2)

    async def end(
        self,
        ctx: JobContext,
        *,
        result: Any = None,
        error: BaseException | None = None,
        retry: str | None = None,
    ) -> None:
        try:
            if retry is not None and await self.pool.requeue(ctx, "retry", retry):
                return
            await self.pool.conclude(ctx, result=result, error=error)
        finally:
            self.pool.detach(ctx.job_id)


def _local_bus(url: str) -> bool:
    return url.startswith("memory://")


_runtimes: dict[int, WorkerRuntime] = {}
_runtimes_lock = threading.Lock()


def worker_runtime(app: Celery) -> WorkerRuntime:
    """This process's runtime (made and started on first use: after a prefork child's fork)."""
    pid = os.getpid()
    runtime = _runtimes.get(pid)
    if runtime is not None:
        return runtime
    with _runtimes_lock:
        runtime = _runtimes.get(pid)
        if runtime is None:
            settings: Settings | None = app.conf.get("jobstream_settings")
            registry: Registry | None = app.conf.get("jobstream_registry")
            settings = settings or Settings()
            if registry is None:
                from jobstream.server.runtime import default_registry

                registry = default_registry(settings)
            runtime = WorkerRuntime(settings, registry, app)
            runtime.start()
            _runtimes[pid] = runtime
    return runtime


def _start_quietly(app: Celery) -> None:
    try:
        worker_runtime(app)
    except Exception:  # the first task tries again and fails visibly
        log.exception("starting the jobstream runtime failed")


def stop_worker_runtime() -> None:
    """Stop this process's runtime, if it has one (a Celery worker's shutdown signals)."""
    with _runtimes_lock:
        runtime = _runtimes.pop(os.getpid(), None)
    if runtime is not None:
        runtime.stop()


def _on_shutdown(**_: Any) -> None:
    stop_worker_runtime()


celery_signals.worker_process_shutdown.connect(_on_shutdown, weak=False)
celery_signals.worker_shutdown.connect(_on_shutdown, weak=False)


# -- a plain task of an application's own Celery app, reporting as a job ---------------------

_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "jobstream_celery_job", default=None
)


class JobTask(Task):  # type: ignore[misc]
    """A Celery task base whose every run is a jobstream job: ``@app.task(bind=True,
    base=JobTask)``. The job's id is the task's request id; ``self.job`` is its ``JobContext``
    (``progress``, ``log``, ``set_state``, ``tqdm``, cancel checkpoints). The task is called as
    before (``delay``, ``apply_async``).

    The job's end is written before Celery stores the task's outcome (this runs inside the
    task's call, before the result backend is updated and before ``on_success``): a client that
    sees ``completed`` can fetch the result, and one that sees Celery's ``SUCCESS`` finds the
    job completed. A retry (``self.retry``, ``autoretry_for``) is a ``log`` warning and a
    ``status_change`` back to ``queued``; the next attempt runs the same job again."""

    jobstream_owner: str = PLAIN_TASK_OWNER
    """The owner of the jobs this task reports as (the JWT ``sub`` that may watch them)."""

    @property
    def job(self) -> JobContext:
        ctx = _current.get()
        if ctx is None:
            raise RuntimeError("self.job is only available while the task runs on a worker")
        return ctx

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly or request.id is None:
            return super().__call__(*args, **kwargs)
        runtime = worker_runtime(self.app)
        redelivered = bool((request.delivery_info or {}).get("redelivered"))
        ctx = runtime.call(
            runtime.begin(
                request.id, self.name, _params(args, kwargs), self.jobstream_owner, redelivered
            )
        )
        if ctx is None:
            log.info("task %s: its job is finished or runs elsewhere; skipped", request.id)
            return None
        token = _current.set(ctx)
        try:
            value = super().__call__(*args, **kwargs)
        except Retry as exc:
            runtime.call(runtime.end(ctx, retry=_retry_line(self, exc)))
            raise
        except JobCancelled as exc:
            runtime.call(runtime.end(ctx, error=exc))
            raise
        except Exception as exc:
            runtime.call(runtime.end(ctx, error=exc))
            raise
        else:
            runtime.call(runtime.end(ctx, result=_jsonable(value)))
            return value
        finally:
            _current.reset(token)


def _retry_line(task: Task, exc: Retry) -> str:
    attempt = int(task.request.retries or 0) + 1
    why = exc.exc if exc.exc is not None else exc.message
    when = f" in {exc.when} s" if isinstance(exc.when, int | float) else ""
    text = f"{type(why).__name__}: {why}" if isinstance(why, BaseException) else str(why or "")
    return f"Celery retries the task{when} (retry {attempt}): {text}".rstrip(": ")


def _params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    value = _jsonable({"args": list(args), "kwargs": kwargs})
    return value if isinstance(value, dict) else {}


def _jsonable(value: Any) -> Any:
    try:
        return codec.loads(codec.dumps(value))
    except TypeError:
        return repr(value)


def check_pool(pool: str) -> None:
    if pool not in SUPPORTED_POOLS:
        raise ValueError(
            f"Celery pool {pool!r} is not supported: use {', '.join(SUPPORTED_POOLS)} "
            "(gevent and eventlet patch the sockets and threads under jobstream's asyncio loop)"
        )


def run_celery_worker(
    settings: Settings,
    *,
    pool: str = "prefork",
    concurrency: int | None = None,
    log_level: str = "info",
    data_dir: Path | None = None,
) -> None:
    """``jobstream worker --celery``: a real Celery worker on jobstream's queue (blocks)."""
    check_pool(pool)
    app = celery_app(settings)
    argv = [
        "worker",
        f"--pool={pool}",
        f"--queues={settings.celery_queue}",
        f"--loglevel={log_level.upper()}",
        f"--hostname=jobstream-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    app.worker_main(argv)


__all__ = [
    "SUPPORTED_POOLS",
    "TASK_NAME",
    "CeleryDispatcher",
    "JobTask",
    "WorkerRuntime",
    "celery_app",
    "check_pool",
    "register_kinds",
    "run_celery_worker",
    "stop_worker_runtime",
    "worker_runtime",
]
