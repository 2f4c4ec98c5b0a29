from jobstream.eta import EtaEstimator, StepProfile


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_eta_follows_a_steady_rate_and_is_unknown_before_any_progress() -> None:
    clock = Clock()
    eta = EtaEstimator(clock=clock)
    assert eta.update(0.0) is None
    for second in range(1, 11):
        clock.now = float(second)
        estimate = eta.update(second * 5.0)  # 5 % a second
    assert estimate is not None and abs(estimate - 10.0) < 0.5  # 50 % left at 5 %/s


def test_eta_adapts_when_the_rate_changes_and_ignores_a_single_burst() -> None:
    clock = Clock()
    eta = EtaEstimator(clock=clock, tau=5.0)
    p = 0.0
    for _ in range(20):
        clock.now += 1.0
        p += 2.0
        eta.update(p)
    clock.now += 0.01
    burst = eta.update(p + 1.0)  # 100 %/s for an instant
    assert burst is not None and burst > 15  # still close to the 2 %/s estimate
    for _ in range(30):
        clock.now += 1.0
        p = min(p + 0.5, 99.0)
        slow = eta.update(p)
    assert slow is not None and slow > 2 * (100 - p) / 2.0  # well past the old rate's estimate


def test_without_history_the_first_event_has_no_estimate() -> None:
    """Today's behaviour, kept for a kind never run before: no rate, no ETA."""
    eta = EtaEstimator(clock=Clock())
    assert eta.update(0.0, step=1, total_steps=4) is None


def test_history_gives_an_estimate_from_the_first_event() -> None:
    clock = Clock()
    profile = StepProfile.from_history([[1.0, 4.0, 2.0], [1.2, 3.8, 2.0], [0.8, 4.2, 2.0]])
    eta = EtaEstimator(clock=clock, profile=profile)
    first = eta.update(0.0, step=1, total_steps=3)
    assert first == 7.0  # the medians: 1 + 4 + 2
    clock.now = 1.0
    second = eta.update(100 / 3, step=2, total_steps=3)
    assert second is not None and abs(second - 6.0) < 0.6  # step 2 (4 s) and step 3 (2 s) left


def test_a_slower_run_than_the_history_is_not_promised_the_history_s_pace() -> None:
    clock = Clock()
    profile = StepProfile.from_history([[1.0] * 10] * 5)
    eta = EtaEstimator(clock=clock, profile=profile)
    estimate = None
    for step in range(1, 6):  # every step takes 2 s here, twice the history's
        estimate = eta.update(10.0 * (step - 1), step=step, total_steps=10)
        clock.now += 2.0
    clock.now -= 2.0
    # 6 steps of 2 s are left (12 s); the history alone would say 6 s.
    assert estimate is not None and 9.0 <= estimate <= 13.0


def test_a_history_of_another_step_count_is_used_by_percent() -> None:
    clock = Clock()
    eta = EtaEstimator(clock=clock, profile=StepProfile.from_history([[5.0, 5.0]]))
    assert eta.update(0.0, step=1, total_steps=4) == 10.0
    assert StepProfile.from_history([]) is None
    assert StepProfile.from_history([[]]) is None
