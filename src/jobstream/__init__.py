"""jobstream: real-time progress for long-running jobs over SSE, WebSocket and polling.

The names below are imported on first use, so that ``import jobstream.models`` in a remote
worker does not load the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobstream.bus import EventBus, MemoryBus
    from jobstream.client import JobstreamClient
    from jobstream.models import Event, EventType, IllegalTransition, Job, JobStatus
    from jobstream.server.app import create_app, lifespan
    from jobstream.settings import Settings
    from jobstream.store import JobStore, MemoryStore
    from jobstream.worker.context import JobCancelled, JobContext, JobFailed
    from jobstream.worker.registry import JobKind, Registry

__version__ = "0.1.0"

_WHERE = {
    "Event": "jobstream.models",
    "EventBus": "jobstream.bus",
    "EventType": "jobstream.models",
    "IllegalTransition": "jobstream.models",
    "Job": "jobstream.models",
    "JobCancelled": "jobstream.worker.context",
    "JobContext": "jobstream.worker.context",
    "JobFailed": "jobstream.worker.context",
    "JobKind": "jobstream.worker.registry",
    "JobStatus": "jobstream.models",
    "JobStore": "jobstream.store",
    "JobstreamClient": "jobstream.client",
    "MemoryBus": "jobstream.bus",
    "MemoryStore": "jobstream.store",
    "Registry": "jobstream.worker.registry",
    "Settings": "jobstream.settings",
    "create_app": "jobstream.server.app",
    "lifespan": "jobstream.server.app",
}

__all__ = [
    "Event",
    "EventBus",
    "EventType",
    "IllegalTransition",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobKind",
    "JobStatus",
    "JobStore",
    "JobstreamClient",
    "MemoryBus",
    "MemoryStore",
    "Registry",
    "Settings",
    "__version__",
    "create_app",
    "lifespan",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'jobstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))
