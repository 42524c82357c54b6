"""The poll schedule: sparse early, dense where tasks of the kind end, bounded backoff; never
worse than a fixed 15 s poller, whatever the spread of generation times."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable

import pytest

from hailuo_mcp.durations import Durations
from hailuo_mcp.models import TaskStatus
from hailuo_mcp.polling import GET_BUDGET, PollSchedule, expected_seconds, progress_percent


def poll_times(schedule: PollSchedule, start_at: float, until: float) -> list[float]:
    """Walk the schedule for a task that starts generating at `start_at`."""
    times: list[float] = []
    now = 0.0
    while now < until:
        now += schedule.next_delay(now)
        times.append(now)
        schedule.observe(now, TaskStatus.PROCESSING if now >= start_at else TaskStatus.PENDING)
    return times


def test_polls_are_sparse_early_and_dense_near_the_expected_end() -> None:
    times = poll_times(PollSchedule(77.0), start_at=1.0, until=100.0)
    early = [t for t in times if t < 55]
    near_end = [t for t in times if 65 <= t <= 90]
    assert len(early) <= 3
    gaps = [b - a for a, b in zip(near_end, near_end[1:], strict=False)]
    assert gaps and max(gaps) <= 2.0


def test_a_late_task_is_polled_less_and_less_often_but_never_stops() -> None:
    times = poll_times(PollSchedule(77.0), start_at=1.0, until=400.0)
    late_gaps = [b - a for a, b in zip(times, times[1:], strict=False) if a > 150]
    assert late_gaps and late_gaps[-1] >= late_gaps[0]
    assert max(late_gaps) <= 0.1 * 77 + 1e-9


def test_the_schedule_shrinks_with_the_expected_duration() -> None:
    slow = poll_times(PollSchedule(77.0), start_at=1.0, until=77.0)
    fast = poll_times(PollSchedule(0.77), start_at=0.01, until=0.77)
    assert len(slow) == len(fast)
    for a, b in zip(slow, fast, strict=True):
        assert b == pytest.approx(a / 100, rel=1e-6, abs=0.03)


def test_a_long_queue_is_polled_at_a_growing_but_capped_interval() -> None:
    schedule = PollSchedule(77.0)
    times = poll_times(schedule, start_at=10_000.0, until=200.0)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[-1] > gaps[0]
    assert max(gaps) <= 0.12 * 77 + 1e-9


def test_backoff_grows_with_failures_and_honours_retry_after() -> None:
    schedule = PollSchedule(77.0)
    assert schedule.backoff(1, None) < schedule.backoff(4, None) * 1.5
    assert schedule.backoff(1, retry_after=30.0) >= 30.0
    assert schedule.backoff(50, None) <= 0.12 * 77 * 1.25


def test_expected_duration_scales_with_model_duration_and_resolution() -> None:
    assert expected_seconds(77, "v2.3", 6, 768) == 77
    assert expected_seconds(77, "v2.3-fast", 6, 768) < 77 < expected_seconds(77, "v2.3", 10, 768)
    assert expected_seconds(77, "v2.3", 6, 1080) > 77


def test_progress_rises_steadily_and_never_reaches_100_before_the_end() -> None:
    values = [progress_percent(t, 77.0) for t in range(0, 600, 5)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < 100


def first_dense_poll(times: list[float]) -> float:
    """The first poll followed by a gap of at most 2 s."""
    return next(a for a, b in zip(times, times[1:], strict=False) if b - a <= 2.0)


def test_dense_polling_follows_the_observed_start_so_queue_time_drops_out() -> None:
    short_queue = poll_times(PollSchedule(77.0), start_at=1.0, until=200.0)
    long_queue = poll_times(PollSchedule(77.0), start_at=20.0, until=200.0)
    shift = first_dense_poll(long_queue) - first_dense_poll(short_queue)
    # Generation start is known to within one queued-poll interval, not the whole queue.
    assert 19.0 - 0.12 * 77 <= shift <= 19.0 + 0.12 * 77


@pytest.mark.parametrize("generation_s", [64.0, 70.0, 76.0, 85.0, 95.0])
def test_a_completion_near_the_expected_end_is_seen_within_two_seconds(
    generation_s: float,
) -> None:
    queue_s = 1.0
    times = poll_times(PollSchedule(77.0), start_at=queue_s, until=queue_s + generation_s + 10)
    seen = next(t for t in times if t >= queue_s + generation_s)
    assert seen - (queue_s + generation_s) <= 2.0


Spans = list[tuple[float, float]]


def draw(n: int, sigma: float, seed: int, median_s: float = 76.0) -> Spans:
    """Seeded (queue, generation) seconds: queues ~1.5 s with a long tail, log-normal work."""
    rng = random.Random(seed)
    return [
        (1.5 * math.exp(rng.gauss(0, 0.9)), median_s * math.exp(rng.gauss(0, sigma)))
        for _ in range(n)
    ]


class Fixed:
    """A fixed poller: one GET every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def next_delay(self, elapsed: float) -> float:
        return self.interval

    def observe(self, elapsed: float, status: TaskStatus) -> None:
        pass


def delays(spans: Spans, make: Callable[[], PollSchedule | Fixed]) -> tuple[list[float], float]:
    """Delay from each end to the GET that saw it, and the mean GETs per task."""
    out, gets = [], 0
    for queue_s, generate_s in spans:
        schedule, now, end = make(), 0.0, queue_s + generate_s
        while True:
            now += schedule.next_delay(now)
            gets += 1
            if now >= end:
                break
            schedule.observe(now, TaskStatus.PROCESSING if now >= queue_s else TaskStatus.PENDING)
        out.append(now - end)
    return out, gets / len(spans)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2, 0.3, 0.4, 0.5])
def test_never_worse_than_a_fixed_15_s_poller_at_any_spread_before_or_after_history(
    sigma: float,
) -> None:
    tasks = draw(1500, sigma, seed=int(sigma * 100))
    fixed, _ = delays(tasks, lambda: Fixed(15.0))
    cold, _ = delays(tasks, lambda: PollSchedule(77.0))
    known = Durations.learnt(draw(30, sigma, seed=1000 + int(sigma * 100)), 77.0)
    learnt, gets = delays(tasks, lambda: PollSchedule(77.0, durations=known))
    assert p95(cold) < p95(fixed)
    assert p95(learnt) < p95(fixed)
    assert p95(learnt) <= p95(cold) + 0.2  # history never makes it worse
    assert gets <= GET_BUDGET + 5  # a wide spread spends the budget (20), not much more


def test_history_narrows_the_delay_of_a_wide_spread_for_a_bounded_number_of_gets() -> None:
    tasks = draw(1500, 0.3, seed=31)
    cold, cold_gets = delays(tasks, lambda: PollSchedule(77.0))
    known = Durations.learnt(draw(30, 0.3, seed=32), 77.0)
    learnt, gets = delays(tasks, lambda: PollSchedule(77.0, durations=known))
    assert p95(learnt) < p95(cold) / 2
    assert gets <= GET_BUDGET + 5


def test_a_history_of_slow_tasks_moves_the_dense_window_to_them() -> None:
    slow = Durations.learnt(draw(30, 0.12, seed=4, median_s=120.0), 77.0)
    page = poll_times(PollSchedule(77.0), start_at=1.0, until=140.0)
    learnt = poll_times(PollSchedule(77.0, durations=slow), start_at=1.0, until=140.0)
    assert first_dense_poll(learnt) > first_dense_poll(page) + 25
    assert sum(1 for t in learnt if t < 90) <= 4
    # A slow task is seen within a spacing of its end, after fewer GETs than without history.
    end = 1.0 + 118.0
    assert next(t for t in learnt if t >= end) - end <= 2.0
    assert sum(1 for t in learnt if t < end) < sum(1 for t in page if t < end) - 5


def test_with_webhooks_polls_are_a_cheap_safety_net() -> None:
    times = poll_times(PollSchedule(77.0, safety_net=True), start_at=1.0, until=200.0)
    assert not [t for t in times if t < 77]  # a task that ends on time is not polled at all
    # A lost delivery still ends the wait: one look when most tasks are done, then steadily.
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert times[0] <= 1.0 + 95 and max(gaps) <= 0.1 * 77 + 1e-9


def test_the_start_is_placed_where_the_known_queue_times_say() -> None:
    schedule = PollSchedule(77.0)
    schedule.observe(3.0, TaskStatus.PENDING)
    schedule.observe(6.0, TaskStatus.PROCESSING)
    assert schedule.started_at is not None and 3.0 <= schedule.started_at <= 6.0
    # Queues are short: the start is likelier early in that span than late.
    assert schedule.started_at < 4.5
