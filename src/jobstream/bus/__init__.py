"""Event buses, chosen by URL: ``memory://`` (default) or ``redis://host:port/db``."""

from __future__ import annotations

from jobstream.bus.base import EventBus
from jobstream.bus.memory import MemoryBus
from jobstream.bus.subscriber import Subscriber, Wake
from jobstream.extras import require_driver

__all__ = ["EventBus", "MemoryBus", "Subscriber", "Wake", "create_bus"]


def create_bus(url: str | EventBus, *, prefix: str = "jobstream:", events: bool = True) -> EventBus:
    """An instance is used as it is; a URL picks a backend by its scheme, imported lazily.
    ``prefix``: of every Redis key and channel; ``events=False``: a process that publishes
    events but reads none (a worker) subscribes to control messages only."""
    if isinstance(url, EventBus):
        return url
    require_driver(url, "bus")
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return MemoryBus()
    if scheme in ("redis", "rediss"):
        from jobstream.bus.redis import RedisBus

        return RedisBus(url, prefix, events=events)
    raise ValueError(f"unknown bus URL scheme {scheme!r}: use memory:// or redis://host:port/db")
