"""Server-side ETA: what earlier runs of the kind took, blended with this run's progress rate.

Two estimates, one answer:

- **Learned** (``StepProfile``): the median duration of each step over the kind's recorded runs
  (``JobStore.step_history``, per parameter bucket). From the first event of a run the remaining
  time is what is left of the current step plus the steps after it. As the run goes, the
  learned figure is scaled by this run's pace (the time it took so far over what the profile
  expected for the same ground, clipped to 0.5 to 2 times, weighted by the progress made), so
  a run on a slower machine is not promised the history's speed.
- **Rate** (today's estimator): an exponentially weighted average of percent-per-second whose
  weight depends on the time between samples (time constant ``tau``), so bursts of reports do
  not swing it and a stall slowly lowers it. It knows nothing until a first rate exists.

The blend trusts the learned figure early and the live rate late: the learned share is
``(1 - progress²) * min(1, runs / 3)`` (progress as a fraction; fewer than three recorded runs
count for less), since a rate measured over the first steps says little about the rest. Without
history the answer is the rate's alone, ``None`` while unknown.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

PACE_LIMITS = (0.5, 2.0)
"""How far this run's pace may scale the learned estimate."""
FULL_TRUST_RUNS = 3
"""Recorded runs from which the learned estimate gets its full share."""


class StepProfile:
    """The typical duration of each step of a kind (the median over recorded runs)."""

    __slots__ = ("runs", "steps")

    def __init__(self, runs: Sequence[Sequence[float]]) -> None:
        self.runs = len(runs)
        longest = max((len(run) for run in runs), default=0)
        self.steps: list[float] = [
            statistics.median(run[i] for run in runs if len(run) > i) for i in range(longest)
        ]

    @classmethod
    def from_history(cls, runs: Sequence[Sequence[float]]) -> StepProfile | None:
        """``None`` when there is nothing to learn from."""
        runs = [run for run in runs if run and all(d >= 0 for d in run)]
        return cls(runs) if runs else None

    @property
    def total(self) -> float:
        return sum(self.steps)

    def expected(self, step: int | None, in_step: float, percent: float) -> tuple[float, float]:
        """(seconds the profile expects so far, seconds it expects are left) for a run in step
        ``step`` (1-based; ``None``: a run that reports percent only) for ``in_step`` seconds."""
        if step is None or step < 1 or step > len(self.steps):
            done = self.total * min(max(percent, 0.0), 100.0) / 100.0
            return done, self.total - done
        i = step - 1
        current = self.steps[i]
        spent = min(in_step, current)
        return sum(self.steps[:i]) + spent, (current - spent) + sum(self.steps[i + 1 :])


class EtaEstimator:
    def __init__(
        self,
        *,
        tau: float = 5.0,
        clock: Callable[[], float] | None = None,
        profile: StepProfile | None = None,
    ) -> None:
        self.tau = tau
        self._clock = clock or time.monotonic
        self._started = self._clock()
        self._last_t: float | None = None
        self._last_p = 0.0
        self._rate: float | None = None
        self.profile = profile
        self._step: int | None = None
        self._step_since = self._started

    def learn(self, profile: StepProfile | None) -> None:
        """Use ``profile`` (earlier runs' steps) from the next update on."""
        self.profile = profile

    def update(
        self, percent: float, step: int | None = None, total_steps: int | None = None
    ) -> float | None:
        """Feed the newest percent (and the step, when the run has steps); returns seconds to
        completion, or ``None`` when unknown."""
        now = self._clock()
        if step != self._step:
            self._step, self._step_since = step, now
        if self._last_t is None:
            elapsed = now - self._started
            if percent > 0 and elapsed > 0:
                self._rate = percent / elapsed
            self._last_t, self._last_p = now, percent
            return self._answer(percent, now, total_steps)
        dt = now - self._last_t
        if dt > 0:
            inst = max(percent - self._last_p, 0.0) / dt
            weight = 1.0 - math.exp(-dt / self.tau)
            self._rate = inst if self._rate is None else self._rate + weight * (inst - self._rate)
            self._last_t, self._last_p = now, percent
        return self._answer(percent, now, total_steps)

    def eta(self, percent: float) -> float | None:
        """The rate's estimate alone."""
        if self._rate is None or self._rate <= 1e-9:
            return None
        return round(max(100.0 - percent, 0.0) / self._rate, 1)

    def learned(self, percent: float, total_steps: int | None = None) -> float | None:
        """The learned estimate alone (``None`` without a usable profile)."""
        return self._learned(percent, self._clock(), total_steps)

    def _learned(self, percent: float, now: float, total_steps: int | None) -> float | None:
        profile = self.profile
        if profile is None or profile.total <= 0:
            return None
        step = self._step
        if total_steps is not None and total_steps != len(profile.steps):
            step = None  # a run with another number of steps: compare by percent
        done, left = profile.expected(step, now - self._step_since, percent)
        fraction = min(max(percent, 0.0), 100.0) / 100.0
        elapsed = now - self._started
        if done > 0 and elapsed > 0:
            pace = min(max(elapsed / done, PACE_LIMITS[0]), PACE_LIMITS[1])
            left *= 1.0 + fraction * (pace - 1.0)
        return max(left, 0.0)

    def _answer(self, percent: float, now: float, total_steps: int | None) -> float | None:
        rate = self.eta(percent)
        learned = self._learned(percent, now, total_steps)
        if learned is None:
            return rate
        if rate is None:
            return round(learned, 1)
        assert self.profile is not None
        fraction = min(max(percent, 0.0), 100.0) / 100.0
        share = (1.0 - fraction * fraction) * min(1.0, self.profile.runs / FULL_TRUST_RUNS)
        return round(share * learned + (1.0 - share) * rate, 1)


__all__ = ["EtaEstimator", "StepProfile"]
