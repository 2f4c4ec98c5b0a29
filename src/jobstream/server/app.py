"""``create_app(settings)``: the whole server as an ASGI app, built in a function.

Nothing is created at import time. The lifespan starts the store, the bus, the stream hub and
(unless disabled) the embedded worker pool, and stops them in the reverse order: streams first,
so every open stream gets its clean close before the workers re-queue what they were running.
"""

from __future__ import annotations

import gc
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobstream.bus import EventBus, create_bus
from jobstream.profiles import install_profiles, websocket_jobs
from jobstream.server.auth import Authenticator, AuthError, Forbidden, redact
from jobstream.server.deps import Runtime
from jobstream.server.metrics import Metrics
from jobstream.server.routes import build_router
from jobstream.service import InvalidParams, JobConflict, JobNotFound, JobService, RateLimited
from jobstream.settings import Settings
from jobstream.store import JobStore, create_store
from jobstream.store.base import InsufficientCredits
from jobstream.streams.lifecycle import StreamHub, StreamLimit
from jobstream.worker.pool import WorkerPool
from jobstream.worker.registry import Registry

log = logging.getLogger("jobstream")
WEB_DIR = Path(__file__).resolve().parent.parent / "web"

Plugin = Callable[[FastAPI, Runtime], None]


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    store: JobStore | str | None = None,
    bus: EventBus | str | None = None,
    plugins: Iterable[Plugin] = (),
) -> FastAPI:
    """The jobstream server. ``registry`` defaults to the demo kinds (when enabled)."""
    settings = settings or Settings()
    settings.check()
    if registry is None:
        registry = Registry()
        if settings.demo_jobs:
            from jobstream.jobs import register_demo_kinds

            register_demo_kinds(registry, speed=settings.demo_speed)
        for path in settings.kinds:
            load_registrar(path)(registry)
    store_ = create_store(store if store is not None else settings.resolved_store_url)
    store_.max_events_per_job = settings.max_events_per_job
    store_.initial_credits = settings.initial_credits
    bus_ = create_bus(bus if bus is not None else settings.bus_url)
    metrics = Metrics()
    hub = StreamHub(settings, store_, bus_, metrics)
    pool: WorkerPool | None = None
    if settings.workers > 0:
        pool = WorkerPool(
            store=store_,
            bus=bus_,
            registry=registry,
            data_dir=settings.data_dir,
            concurrency=settings.workers,
            lease_seconds=settings.lease_seconds,
            flush_interval=settings.progress_flush_seconds,
            recover_all_on_start=settings.embedded_store,
            shutdown_grace=settings.shutdown_grace_seconds,
            on_finished=lambda job, event: metrics.jobs_finished.labels(
                kind=job.kind, status=job.status.value
            ).inc(),
        )
    jobs = JobService(
        store_,
        bus_,
        registry,
        on_queued=pool.notify if pool is not None else None,
        submit_rate_per_minute=settings.submit_rate_per_minute,
    )
    runtime = Runtime(
        settings=settings,
        store=store_,
        bus=bus_,
        registry=registry,
        auth=Authenticator(settings),
        metrics=metrics,
        hub=hub,
        jobs=jobs,
        pool=pool,
        extras={},
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await store_.start()
        await bus_.start()
        await hub.start()
        if pool is not None:
            await pool.start()
        # Long-lived objects made so far are never garbage; keep the collector off them, and
        # collect young objects less often (default thresholds gave 400 ms pauses under load).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        try:
            yield
        finally:
            await hub.shutdown()
            if pool is not None:
                await pool.stop()
            await bus_.close()
            await store_.close()

    app = FastAPI(
        title="jobstream",
        version="0.1.0",
        summary="Real-time progress for long-running jobs over SSE, WebSocket and polling",
        lifespan=lifespan,
    )
    app.state.jobstream = runtime
    _install_error_handlers(app, metrics)
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "If-None-Match"],
            expose_headers=["ETag", "Retry-After"],
            allow_credentials=True,
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(build_router())
    install_profiles(app, runtime)
    websocket_jobs.install(app, runtime)
    for plugin in plugins:
        plugin(app, runtime)
    _mount_ui(app)
    install_log_redaction()
    return app


def load_registrar(path: str) -> Callable[[Registry], Any]:
    """``"package.module:function"`` -> the function (which registers kinds on a registry)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"JOBSTREAM_KINDS entries look like 'module:function', not {path!r}")
    module = importlib.import_module(module_name)
    registrar = getattr(module, attr, None)
    if not callable(registrar):
        raise ValueError(f"{path!r} is not a function of {module_name}")
    return registrar  # type: ignore[no-any-return]


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    def counted(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.errors.labels(code=str(status)).inc()
        return _error(status, detail, headers)

    async def on_auth(request: Request, exc: Exception) -> Response:
        return counted(401, str(exc), {"WWW-Authenticate": "Bearer"})

    async def on_forbidden(request: Request, exc: Exception) -> Response:
        return counted(403, str(exc))

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return counted(404, str(exc))

    async def on_conflict(request: Request, exc: Exception) -> Response:
        return counted(409, str(exc))

    async def on_credits(request: Request, exc: Exception) -> Response:
        return counted(402, str(exc))

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidParams)
        return counted(422, exc.errors)

    async def on_rate(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RateLimited)
        return counted(429, str(exc), {"Retry-After": str(exc.retry_after)})

    async def on_stream_limit(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StreamLimit)
        return counted(503, str(exc), {"Retry-After": str(exc.retry_after)})

    async def on_value(request: Request, exc: Exception) -> Response:
        return counted(400, str(exc))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return counted(422, errors)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return counted(exc.status_code, exc.detail, dict(exc.headers or {}))

    app.add_exception_handler(AuthError, on_auth)
    app.add_exception_handler(Forbidden, on_forbidden)
    app.add_exception_handler(JobNotFound, on_not_found)
    app.add_exception_handler(JobConflict, on_conflict)
    app.add_exception_handler(InsufficientCredits, on_credits)
    app.add_exception_handler(InvalidParams, on_invalid)
    app.add_exception_handler(RateLimited, on_rate)
    app.add_exception_handler(StreamLimit, on_stream_limit)
    app.add_exception_handler(ValueError, on_value)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


class BodySizeLimit:
    """413 for a request body over the limit, by its Content-Length or as it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(413, f"request body too large: at most {self.max_bytes} bytes")
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _mount_ui(app: FastAPI) -> None:
    index = WEB_DIR / "index.html"
    if (WEB_DIR / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=WEB_DIR / "assets"), name="assets")

    async def ui(request: Request) -> Response:
        if index.is_file():
            return FileResponse(
                index, media_type="text/html", headers={"Cache-Control": "no-cache"}
            )
        return HTMLResponse(
            "<!doctype html><title>jobstream</title><h1>jobstream</h1>"
            "<p>The web UI is not built. The API is at <a href='/docs'>/docs</a>.</p>"
        )

    app.add_route("/", ui, methods=["GET"], include_in_schema=False)
    app.add_route("/jobs/{job_id}", ui, methods=["GET"], include_in_schema=False)
    app.add_route("/new", ui, methods=["GET"], include_in_schema=False)


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str) and any(
            key in record.msg for key in ("token=", "ticket=", "signature=")
        ):
            record.msg = redact(record.msg)
        return True


def install_log_redaction() -> None:
    """Redact ``?token=``/``?ticket=`` from the access log and jobstream's own logs."""
    for name in ("uvicorn.access", "uvicorn.error", "jobstream"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())
