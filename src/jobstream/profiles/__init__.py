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
``websocket_jobs``       004   ``WS /ws/jobs/{id}``, ``WS /ws/jobs``, ``GET /api/jobs/{id}``,
                               ``GET /api/jobs/{id}/download``
=======================  ====  =========================================================

"""

from __future__ import annotations

from fastapi import APIRouter

from jobstream.profiles import (
    bullmq_jobs,
    transcription_tasks,
    video_queue,
    video_studio,
    websocket_jobs,
)

PROFILES = (video_queue, bullmq_jobs, video_studio, transcription_tasks, websocket_jobs)
ROUTERS: tuple[APIRouter, ...] = tuple(profile.router for profile in PROFILES)
"""Each profile's module-level router, included by ``create_app`` after the canonical API."""

__all__ = ["PROFILES", "ROUTERS"]
