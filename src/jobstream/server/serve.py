"""Running the app under uvicorn with a prompt, clean shutdown.

uvicorn waits for open connections to finish before it runs the app's lifespan shutdown, and a
stream never finishes by itself, so on SIGTERM/SIGINT this server first closes every stream
through the stream hub (each gets its transport's clean close) and answers the external
workers' waiting claims (204), then lets uvicorn stop.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOG_LEVELS

from jobstream.server.app import create_app
from jobstream.server.logs import log_config
from jobstream.settings import Settings

log = logging.getLogger("jobstream")


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        loop = self._loop
        if loop is not None and not self.should_exit:
            runtime = self._app.state.jobstream
            loop.call_soon_threadsafe(runtime.external.close_claims)
            loop.call_soon_threadsafe(lambda: loop.create_task(runtime.hub.shutdown()))
        super().handle_exit(sig, frame)


def run(
    settings: Settings,
    app: FastAPI | None = None,
    *,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve ``app`` (by default ``create_app(settings)``) until SIGTERM/SIGINT, every log
    record in ``settings.log_format`` (``server/logs.py``)."""
    if app is None:
        app = create_app(settings)
    level = LOG_LEVELS[log_level.lower()]
    logging.captureWarnings(True)  # Python warnings are log records too, in the same format
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config(settings.log_format, level),
        log_level=level,
        access_log=access_log,
        timeout_graceful_shutdown=max(int(settings.shutdown_grace_seconds), 1),
        # Protocol pings for WebSocket streams; a peer that does not answer in time is dropped.
        ws_ping_interval=settings.ws_ping_seconds,
        ws_ping_timeout=settings.ws_ping_seconds,
        # Off by default: progress messages are small, and each compressed connection holds
        # zlib state of ~300 KB whose allocations fragment the heap (docs/benchmarks.md).
        ws_per_message_deflate=settings.ws_compression,
        proxy_headers=True,
    )
    log.info(
        "jobstream on http://%s:%s (auth: %s, data: %s, UI at /, API docs at /docs)",
        settings.host,
        settings.port,
        settings.auth_mode,
        settings.data_dir,
        extra={
            "event": "server.start",
            "url": f"http://{settings.host}:{settings.port}",
            "auth": settings.auth_mode,
            "data_dir": str(settings.data_dir),
            "workers": settings.workers,
        },
    )
    Server(config, app).run()
