"""How exceptions become HTTP answers: each product exception has its status and a JSON body
``{"detail": ...}`` that says what to fix. ``BadRequest`` alone is 400; a store that does not
answer is a 503 to retry; any other exception (a bug) is a 500, and its traceback is logged."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobstream.errors import BadRequest
from jobstream.server.auth import AuthError, Forbidden
from jobstream.server.metrics import Metrics
from jobstream.service import InvalidParams, JobConflict, JobNotFound, RateLimited
from jobstream.store.base import InsufficientCredits
from jobstream.streams.lifecycle import StreamLimit
from jobstream.worker.external import LeaseLost

log = logging.getLogger("jobstream.server")


def error_response(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


_UNAVAILABLE = frozenset(
    {
        "InvalidCatalogNameError",  # the database is gone
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "TooManyConnectionsError",
    }
)


def store_unavailable(exc: BaseException) -> bool:
    """The store cannot be reached (as opposed to a query that is wrong: a bug, a 500)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError | sqlalchemy.exc.OperationalError):
            return True
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if type(seen).__name__ in _UNAVAILABLE:
            return True
        seen = seen.__cause__
    return False


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    def counted(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.errors.labels(code=str(status)).inc()
        return error_response(status, detail, headers)

    def plain(status: int, headers: dict[str, str] | None = None) -> Any:
        async def handle(request: Request, exc: Exception) -> Response:
            return counted(status, str(exc), headers)

        return handle

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidParams)
        return counted(422, exc.errors)

    async def on_rate(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RateLimited | StreamLimit)
        status = 429 if isinstance(exc, RateLimited) else 503
        return counted(status, str(exc), {"Retry-After": str(exc.retry_after)})

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

    async def on_store_error(request: Request, exc: Exception) -> Response:
        if not store_unavailable(exc):
            return await on_bug(request, exc)
        # The database does not answer (connection refused or lost, the database gone): the
        # request may be retried as it is; nothing was half-written (one transaction each).
        log.warning("the store did not answer %s %s: %s", request.method, request.url.path, exc)
        return counted(503, "the job store is not answering; retry shortly", {"Retry-After": "2"})

    async def on_lease_lost(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LeaseLost)
        metrics.errors.labels(code="409").inc()
        return JSONResponse(
            {"detail": str(exc), "job_status": exc.job_status.value}, status_code=409
        )

    async def on_bug(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this answer, and the server logs the traceback.
        return counted(500, "internal server error: the server's log has the details")

    app.add_exception_handler(AuthError, plain(401, {"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(Forbidden, plain(403))
    app.add_exception_handler(JobNotFound, plain(404))
    app.add_exception_handler(JobConflict, plain(409))
    app.add_exception_handler(LeaseLost, on_lease_lost)
    app.add_exception_handler(InsufficientCredits, plain(402))
    app.add_exception_handler(BadRequest, plain(400))
    app.add_exception_handler(InvalidParams, on_invalid)
    app.add_exception_handler(RateLimited, on_rate)
    app.add_exception_handler(StreamLimit, on_rate)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, on_store_error)
    app.add_exception_handler(ConnectionError, on_store_error)
    app.add_exception_handler(Exception, on_bug)


__all__ = ["error_response", "install_error_handlers"]
