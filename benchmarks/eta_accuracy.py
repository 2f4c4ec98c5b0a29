"""ETA accuracy: the learned estimator (earlier runs' step durations blended with the live rate)
beside the rate-only one, on the demo kinds' own schedules with step durations that vary.

Each demo kind is replayed as the schedule its handler reports on (``jobstream.jobs``: a report
at each step start for ``video``, ``pdf``, ``character`` and ``media``; ``task``'s ticks inside
its three steps), on a simulated clock, so a run of 50 jobs per kind takes well under a second
and the figures do not depend on the machine's load. Every run draws its own durations: a
pace for the run (0.8 to 1.25 times, a busier or quieter machine) and a jitter per step
(log-normal, sigma 0.2); ``pdf``'s assembly step also grows with ``pages`` (4, 12, 48 or 300
pages, drawn per run), which is what its ETA bucket is for.

Both estimators see the same reports. The learned one starts each run from what
``JobStore.step_history`` holds for the kind and bucket (a ``MemoryStore``, filled by
``record_steps`` after each run as the worker pool does), so the first run of each kind and
bucket has nothing to learn from, as on a fresh server. The error at X % is
``|estimate - true time left|`` at the report whose progress is closest to X % (the earlier of
two as close: ``video``'s 10 % is its step 2 at 12.5 %, its 90 % its step 8 at 87.5 %); "none"
counts the runs whose estimator had no estimate there (the UI shows "—").

    .venv/bin/python benchmarks/eta_accuracy.py              # 50 runs per kind, seed 1
    .venv/bin/python benchmarks/eta_accuracy.py --runs 200 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from jobstream.eta import EtaEstimator, StepProfile
from jobstream.jobs import character, media, pdf, task, video
from jobstream.store.memory import MemoryStore

MARKS = (10.0, 50.0, 90.0)


@dataclass(frozen=True, slots=True)
class Step:
    seconds: float
    """Duration at speed 1 on the reference machine."""
    start: float
    end: float
    """Progress (percent) the step starts and ends at."""
    ticks: int = 1
    """Reports inside the step, evenly spaced (1: only at its start)."""


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    steps: Callable[[random.Random], tuple[str, list[Step]]]
    """Draws one run's (bucket, steps)."""


def _even(seconds: list[float]) -> list[Step]:
    n = len(seconds)
    return [Step(s, 100.0 * i / n, 100.0 * (i + 1) / n) for i, s in enumerate(seconds)]


def _video(rng: random.Random) -> tuple[str, list[Step]]:
    return "", _even([s.seconds for s in video.video_steps()])


PDF_PAGES = (4, 12, 48, 300)
PDF_SECONDS_PER_PAGE = 0.04
"""The assembly step's extra work per page (writing the document)."""


def _pdf(rng: random.Random) -> tuple[str, list[Step]]:
    pages = rng.choice(PDF_PAGES)
    seconds = [pdf.STEP_SECONDS] * pdf.TOTAL_STEPS
    seconds[pdf.ASSEMBLY_STEP - 1] += PDF_SECONDS_PER_PAGE * pages
    return pdf.pages_bucket(pdf.PdfParams(pages=pages)), _even(seconds)


def _task(rng: random.Random) -> tuple[str, list[Step]]:
    return "", [
        Step(task.DOWNLOAD_SECONDS, 0.0, 20.0, task.DOWNLOAD_TICKS),
        Step(task.TRANSCRIBE_SECONDS, 20.0, 90.0, task.TRANSCRIBE_TICKS),
        Step(task.FINALIZE_SECONDS, 90.0, 100.0, task.FINALIZE_TICKS),
    ]


def _character(rng: random.Random) -> tuple[str, list[Step]]:
    return "", _even([character.STEP_SECONDS] * character.TOTAL_STEPS)


def _media(rng: random.Random) -> tuple[str, list[Step]]:
    return "", _even([media.STEP_SECONDS] * media.TOTAL_STEPS)


KINDS = (
    Kind("video", _video),
    Kind("pdf", _pdf),
    Kind("task", _task),
    Kind("character", _character),
    Kind("media", _media),
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class Errors:
    """Absolute errors at each mark (and at the first event); ``None``: no estimate."""

    marks: dict[float, list[float | None]]
    first: list[float | None]

    @classmethod
    def empty(cls) -> Errors:
        return cls({mark: [] for mark in MARKS}, [])

    def extend(self, other: Errors) -> None:
        for mark in MARKS:
            self.marks[mark].extend(other.marks[mark])
        self.first.extend(other.first)


def replay(steps: list[Step], durations: list[float], history: list[list[float]] | None) -> Errors:
    """Run one job's reports through an estimator (learned when ``history`` is given)."""
    clock = Clock()
    profile = StepProfile.from_history(history) if history is not None else None
    eta = EtaEstimator(clock=clock, profile=profile)
    reports: list[tuple[float, float, int]] = []  # (time, percent, step)
    t = 0.0
    for number, (step, seconds) in enumerate(zip(steps, durations, strict=True), start=1):
        for tick in range(step.ticks):
            done = tick / step.ticks
            reports.append(
                (t + seconds * done, step.start + (step.end - step.start) * done, number)
            )
        t += seconds
    end = t
    errors = Errors.empty()
    seen: list[tuple[float, float | None]] = []  # (percent, error) of each report
    for when, percent, number in reports:
        clock.now = when
        estimate = eta.update(percent, number, len(steps))
        seen.append((percent, None if estimate is None else abs(estimate - (end - when))))
    errors.first.append(seen[0][1])
    for mark in MARKS:
        closest = min(range(len(seen)), key=lambda i: (abs(seen[i][0] - mark), i))
        errors.marks[mark].append(seen[closest][1])
    return errors


async def run(runs: int, seed: int) -> dict[str, tuple[Errors, Errors]]:
    rng = random.Random(seed)
    store = MemoryStore()
    results: dict[str, tuple[Errors, Errors]] = {}
    for kind in KINDS:
        rate_only, learned = Errors.empty(), Errors.empty()
        for _ in range(runs):
            bucket, steps = kind.steps(rng)
            pace = rng.uniform(0.8, 1.25)
            durations = [s.seconds * pace * rng.lognormvariate(0.0, 0.2) for s in steps]
            history = await store.step_history(kind.name, bucket)
            rate_only.extend(replay(steps, durations, None))
            learned.extend(replay(steps, durations, history))
            await store.record_steps(kind.name, bucket, [round(d, 3) for d in durations])
        results[kind.name] = (rate_only, learned)
    return results


def _mae(errors: list[float | None]) -> str:
    known = [e for e in errors if e is not None]
    unknown = len(errors) - len(known)
    text = f"{statistics.fmean(known):6.2f} s" if known else "     — "
    return text + (f" ({unknown} none)" if unknown else "")


def report(results: dict[str, tuple[Errors, Errors]]) -> None:
    total_rate, total_learned = Errors.empty(), Errors.empty()
    print(f"{'kind':<10} {'at':>11}   {'rate-only':<22} {'learned':<22}")
    for name, (rate_only, learned) in results.items():
        total_rate.extend(rate_only)
        total_learned.extend(learned)
        rows = [("1st event", rate_only.first, learned.first)]
        rows += [(f"{m:.0f} %", rate_only.marks[m], learned.marks[m]) for m in MARKS]
        for label, a, b in rows:
            print(f"{name:<10} {label:>11}   {_mae(a):<22} {_mae(b):<22}")
    rows = [("1st event", total_rate.first, total_learned.first)]
    rows += [(f"{m:.0f} %", total_rate.marks[m], total_learned.marks[m]) for m in MARKS]
    for label, a, b in rows:
        print(f"{'all':<10} {label:>11}   {_mae(a):<22} {_mae(b):<22}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="runs per kind (default 50)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        f"mean absolute ETA error, {args.runs} runs per kind (seed {args.seed}); "
        "the first run of each kind and bucket has no history"
    )
    report(asyncio.run(run(args.runs, args.seed)))


if __name__ == "__main__":
    main()
