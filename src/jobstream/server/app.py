"""``create_app(settings)``: the whole server as an ASGI app, built in a function.

Nothing is created at import time. The app is a composition: the parts (``build_runtime``),
its lifespan (``Runtime.running``), error handlers, middleware, the canonical routers, the
seeds' profiles and the web UI.

Mounted inside another app (``app.mount("/progress", progress)``), a sub-app's lifespan never
runs: the host runs it from its own with ``lifespan=jobstream.lifespan(progress)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from jobstream.bus import EventBus
from jobstream.profiles import ROUTERS as PROFILE_ROUTERS
from jobstream.server.docs import mount_docs
from jobstream.server.errors import install_error_handlers
from jobstream.server.logs import install_log_redaction
from jobstream.server.middleware import BodySizeLimit
from jobstream.server.routes import ROUTERS
from jobstream.server.runtime import Runtime, build_runtime, load_registrar
from jobstream.server.ui import mount_ui
from jobstream.settings import Settings
from jobstream.store import JobStore
from jobstream.streams.connection import DETACH, DetachedBody, compact_scope, remember_raw_send
from jobstream.worker.registry import Registry

Plugin = Callable[[FastAPI, Runtime], None]


BODY_TRANSPARENT = (CORSMiddleware, BodySizeLimit)
"""Middleware that leave response bodies alone: a stream's body may run outside them."""


class JobstreamApp(FastAPI):
    """FastAPI, keeping the server's own ``send`` in the scope so that a stream whose reader
    stopped reading can abort its connection, and running a stream's body outside the routing
    stack (``streams/connection.py``)."""

    _detaching: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        remember_raw_send(scope, send)
        if scope["type"] not in ("http", "websocket"):
            await super().__call__(scope, receive, send)
            return
        detaching = self._detaching
        if detaching is None:
            detaching = self._detaching = all(
                cast(object, m.cls) in BODY_TRANSPARENT for m in self.user_middleware
            )
        if not detaching:
            await super().__call__(scope, receive, send)
            return
        # The detached body (``streams/connection.py``), run here: no frame between this one and
        # the body's for every open stream.
        outermost = "app" not in scope  # not mounted in a host app, which may read its own keys
        slot: list[DetachedBody] = []
        scope[DETACH] = slot
        try:
            await super().__call__(scope, receive, send)
        except BaseException:
            for detached in slot:
                await detached.discard()
            raise
        if slot:
            body = slot.pop().run_body(scope, receive, send)
            del scope[DETACH], slot
            if outermost:
                compact_scope(scope)
            await body


Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    store: JobStore | str | None = None,
    bus: EventBus | str | None = None,
    plugins: Iterable[Plugin] = (),
) -> FastAPI:
    """The jobstream server. ``registry`` defaults to the demo kinds (when enabled) and
    ``JOBSTREAM_KINDS``; ``store`` and ``bus`` (an instance or a URL) to the settings' URLs."""
    settings = settings or Settings()
    settings.check()
    runtime = build_runtime(settings, registry=registry, store=store, bus=bus)

    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime.started:  # a host app runs it already (``jobstream.lifespan``)
            yield
            return
        async with runtime.running():
            yield

    app = JobstreamApp(
        title="jobstream",
        version="0.1.0",
        summary="Real-time progress for long-running jobs over SSE, WebSocket and polling",
        lifespan=own_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.jobstream = runtime
    install_error_handlers(app, runtime.metrics)
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "If-None-Match"],
            expose_headers=["ETag", "Retry-After"],
            allow_credentials=True,
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for router in (*ROUTERS, *PROFILE_ROUTERS):
        app.include_router(router)
    for plugin in plugins:
        plugin(app, runtime)
    mount_docs(app)
    mount_ui(app)
    install_log_redaction()
    return app


def lifespan(jobstream_app: FastAPI, inner: Lifespan | None = None) -> Lifespan:
    """A lifespan for a host app that mounts ``jobstream_app``: it starts jobstream (store, bus,
    streams, workers) before the host's own ``inner`` lifespan and stops it after.

        progress = create_app(registry=registry)
        app = FastAPI(lifespan=jobstream.lifespan(progress))
        app.mount("/progress", progress)
    """
    runtime: Runtime = jobstream_app.state.jobstream

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[None]:
        async with runtime.running():
            if inner is None:
                yield
            else:
                async with inner(app):
                    yield

    return run


__all__ = ["create_app", "lifespan", "load_registrar"]
