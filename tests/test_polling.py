"""The poll schedule: sparse early, dense near the expected end, bounded backoff."""

from __future__ import annotations

import pytest

from hailuo_mcp.models import TaskStatus
from hailuo_mcp.polling import PollSchedule, expected_seconds, progress_percent


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
