from jobstream.eta import EtaEstimator


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
