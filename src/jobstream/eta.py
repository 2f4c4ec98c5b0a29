"""Server-side ETA from a smoothed progress rate.

The rate is an exponentially weighted average of percent-per-second whose weight depends on
the time between samples (time constant ``tau``), so bursts of reports do not swing it and a
stall slowly lowers it. Until a first rate exists the ETA is unknown (``None``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class EtaEstimator:
    def __init__(self, *, tau: float = 5.0, clock: Callable[[], float] | None = None) -> None:
        self.tau = tau
        self._clock = clock or time.monotonic
        self._started = self._clock()
        self._last_t: float | None = None
        self._last_p = 0.0
        self._rate: float | None = None

    def update(self, percent: float) -> float | None:
        """Feed the newest percent; returns seconds to completion, or ``None`` when unknown."""
        now = self._clock()
        if self._last_t is None:
            elapsed = now - self._started
            if percent > 0 and elapsed > 0:
                self._rate = percent / elapsed
            self._last_t, self._last_p = now, percent
            return self.eta(percent)
        dt = now - self._last_t
        if dt <= 0:
            return self.eta(percent)
        inst = max(percent - self._last_p, 0.0) / dt
        weight = 1.0 - math.exp(-dt / self.tau)
        self._rate = inst if self._rate is None else self._rate + weight * (inst - self._rate)
        self._last_t, self._last_p = now, percent
        return self.eta(percent)

    def eta(self, percent: float) -> float | None:
        if self._rate is None or self._rate <= 1e-9:
            return None
        return round(max(100.0 - percent, 0.0) / self._rate, 1)
