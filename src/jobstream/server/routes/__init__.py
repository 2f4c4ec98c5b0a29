"""The canonical API, one module per resource, each with a module-level ``router``:

=============  ==============================================================================
``jobs``       kinds, submit, list, a job's snapshot (ETag, long-poll), cancel, result
``streams``    SSE and WebSocket streams of one job and of all the caller's jobs; stream tickets
``session``    the browser's sign-in: the ``jobstream_token`` cookie set, cleared, and who it is
``workers``    external workers over HTTP: claim a job with a lease, report its events
``ops``        ``/healthz``, ``/readyz``, ``/metrics``
=============  ==============================================================================

``create_app`` includes ``ROUTERS`` in this order; the seeds' profiles come after them.
"""

from __future__ import annotations

from fastapi import APIRouter

from jobstream.server.routes import jobs, ops, session, streams, workers

ROUTERS: tuple[APIRouter, ...] = (
    jobs.router,
    streams.router,
    workers.router,
    session.router,
    ops.router,
)

__all__ = ["ROUTERS"]
