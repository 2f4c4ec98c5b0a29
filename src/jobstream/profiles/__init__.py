"""The seeds' compatibility profiles: each seed's own front end works against jobstream unchanged.

A profile is a thin module over the same core as the canonical API (store, bus, auth, limits and
the one stream lifecycle of ``StreamHub``): its routes, and an encoder from canonical events to
its wire format. None re-implements streaming, resume, auth or heartbeats.

=======================  ====  =========================================================
module                   seed  routes
=======================  ====  =========================================================
``video_queue``          000   ``POST /generate``, ``GET /stream/status/{id}``, ``GET /result/{id}``
``bullmq_jobs``          001   ``POST /api/v1/{characters,media}/queue``,
                               ``GET /api/v1/sse/jobs/{character,media}/{id}``
``video_studio``         002   ``POST /api/v1/videos/generate``, ``GET /api/v1/videos/{id}/stream``,
                               ``POST /api/v1/videos/{id}/cancel``, ``GET /api/v1/users/me``
``transcription_tasks``  003   ``POST /api/v1/tasks``, ``GET /api/v1/sse/tasks/{id}/progress``
=======================  ====  =========================================================

Seed 004's WebSocket profile (``websocket_jobs``) is installed by ``create_app`` on its own.
"""

from __future__ import annotations

from fastapi import FastAPI

from jobstream.profiles import bullmq_jobs, transcription_tasks, video_queue, video_studio
from jobstream.server.deps import Runtime

SSE_PROFILES = (video_queue, bullmq_jobs, video_studio, transcription_tasks)


def install_profiles(app: FastAPI, runtime: Runtime) -> None:
    """Add the routes of seeds 000-003, each profile under its own OpenAPI tag."""
    for profile in SSE_PROFILES:
        profile.install(app, runtime)


__all__ = ["SSE_PROFILES", "install_profiles"]
