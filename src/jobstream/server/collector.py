"""The garbage collector's settings for a server, and its pauses as a metric.

Start-up objects are frozen (``gc.freeze``: never scanned again) and the young generation's
threshold is raised from 700 to 50,000 allocations: collections that frequent paused the
server for up to 400 ms under load. The older generations keep thresholds close to Python's
own (every 20 young collections, every 10 of those), so that a full collection still runs
when, by CPython's rule, the objects promoted since the last one pass a quarter of those that
survived it: reference cycles left by closed connections (uvicorn's upgraded HTTP protocol and
its transport, for one) are collected, and memory stays flat under connection churn. Raising
those two as well (50 and 100) made full collections so rare that such cycles piled up.

A full collection costs time in proportion to the live objects (measured: about 0.9 s with
10,000 open streams, docs/benchmarks.md), so none is ever forced on a schedule; every pause,
by the oldest generation it collected, is in ``jobstream_gc_pause_seconds``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

THRESHOLDS = (50_000, 20, 10)


def settle() -> None:
    """After start-up: collect once, freeze what survived, and set the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


class PauseMetric:
    """Times every collection (``gc.callbacks``) into a histogram; ``close`` stops."""

    def __init__(self, pauses: Histogram) -> None:
        self._pauses = pauses
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            took = time.perf_counter() - self._started
            self._pauses.labels(generation=str(info.get("generation", "?"))).observe(took)

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def close(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


__all__ = ["THRESHOLDS", "PauseMetric", "settle"]
