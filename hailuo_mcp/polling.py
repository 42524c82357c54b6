"""When to ask PiAPI again: a poll schedule for a ~80 s job, derived from one setting.

The schedule knows two phases. While the task is queued it polls every few seconds (queues are
short but can grow). The first answer that says `processing` tells it when generation began
(the middle of the last queued/first started pair of answers), and from then on every poll is
placed relative to that start: queue time, which varies most and says nothing about how long
generation takes, drops out. It then stays quiet until the job is nearly due (one look midway
reports an early failure), polls every ~1.85 s from 83 % to 130 % of the expected generation
time, and after that backs off for a late or stuck task.

Why these figures (docs/PERFORMANCE.md, bench/completion.py): for one model, duration and
resolution, generation time is about log-normal with a spread (sigma) near 0.12, so the window
(with the 2 s before it) catches ~95 % of completions. Inside the window a completion waits at
most one spacing, and the spacing is under 2 s. Polls before the window are paid by every task,
so the window opens as late as the 2 s p95 allows; polls after the mode are cheap (few tasks get
there), so it closes late. Simulated over the emulator's model: p95 delay ~1.8 s with ~11 GETs
per task, where a fixed 15 s poller waits 14.3 s at p95.

Every figure is a fraction of the expected duration, so shrinking HAILUO_EXPECTED_SECONDS
(tests, the demo) shrinks the whole schedule with the emulator's clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hailuo_mcp.models import TaskStatus

# [INF] How much longer than v2.3 · 6 s · 768 a combination takes. Providers quote 30-90 s for
# v2.3 and 20-50 s for v2.3-fast; longer and larger clips take longer.
_MODEL_FACTOR = {"v2.3": 1.0, "v2.3-fast": 0.5}
_DURATION_FACTOR = {6: 1.0, 10: 1.6}
_RESOLUTION_FACTOR = {768: 1.0, 1080: 1.4}

# Fractions of the expected duration E (E = 77 s gives the figures in brackets).
QUEUE_SHARE = 1 / 77  # the seed's task queued 1 s of 77
FIRST_POLL = 0.03  # first look after create, to learn whether generation started [2.3 s]
PENDING_INTERVAL = 0.04  # while queued [3.1 s], growing x1.25 up to PENDING_MAX
PENDING_MAX = 0.12  # [9.2 s]
EARLY_CHECK = 0.45  # one look mid-generation, to report an early failure [~34 s]
DENSE_FROM = 0.83  # dense polling starts here, as a share of generation time [~63 s]
DENSE_UNTIL = 1.3  # and ends here [~99 s]
DENSE_INTERVAL = 0.024  # spacing in the dense window [1.85 s]: under the 2 s p95 target
TAIL_GROWTH = 0.12  # after the window, spacing grows by this share of the overdue time
TAIL_MAX = 0.1  # up to [7.7 s]
# With webhooks on, PiAPI says when a task ends: polls are only a safety net for a missed
# delivery: the early look, then one at the expected end, then every SAFETY_INTERVAL [7.7 s].
SAFETY_FROM = 1.0
SAFETY_INTERVAL = 0.1
MIN_DELAY_S = 0.02


def expected_seconds(base_s: float, model: str, duration: int, resolution: int) -> float:
    """Expected duration of one task: the base (v2.3 · 6 s · 768) scaled for the combination."""
    return (
        base_s
        * _MODEL_FACTOR.get(model, 1.0)
        * _DURATION_FACTOR.get(duration, 1.0)
        * _RESOLUTION_FACTOR.get(resolution, 1.0)
    )


@dataclass
class PollSchedule:
    """Delays between GETs for one task; times are seconds since the wait began."""

    expected_s: float
    started_at: float | None = None
    safety_net: bool = False  # webhooks tell the end; polls only catch a missed delivery
    _last_pending_at: float | None = None
    _pending_interval: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._pending_interval = PENDING_INTERVAL * self.expected_s

    @property
    def generation_s(self) -> float:
        """Expected generation time, without the queue."""
        return self.expected_s * (1 - QUEUE_SHARE)

    def observe(self, elapsed: float, status: TaskStatus) -> None:
        """Learn from one GET answer (its status, seen `elapsed` seconds into the wait)."""
        if self.started_at is not None:
            return
        if status.is_started:
            # Generation began between the last 'queued' answer and this one: take the middle.
            before = self._last_pending_at if self._last_pending_at is not None else 0.0
            self.started_at = (before + elapsed) / 2
        else:
            if self._last_pending_at is not None:
                self._pending_interval = min(
                    self._pending_interval * 1.25, PENDING_MAX * self.expected_s
                )
            self._last_pending_at = elapsed

    def assume_started(self, started_ago_s: float, elapsed: float) -> None:
        """Seed the schedule for a task already running (resumed, or looked up)."""
        self.started_at = elapsed - max(0.0, started_ago_s)

    def next_delay(self, elapsed: float) -> float:
        """Seconds from `elapsed` until the next GET."""
        e = self.expected_s
        if self.started_at is None:
            if self._last_pending_at is None:
                target = FIRST_POLL * e
            else:
                target = self._last_pending_at + self._pending_interval
            return max(MIN_DELAY_S, target - elapsed)
        generation = self.generation_s
        running = elapsed - self.started_at
        if running < EARLY_CHECK * generation:
            return max(MIN_DELAY_S, EARLY_CHECK * generation - running)
        if self.safety_net:
            if running < SAFETY_FROM * generation:
                return max(MIN_DELAY_S, SAFETY_FROM * generation - running)
            return max(MIN_DELAY_S, SAFETY_INTERVAL * e)
        if running < DENSE_FROM * generation:
            return max(MIN_DELAY_S, DENSE_FROM * generation - running)
        dense = DENSE_INTERVAL * e
        if running < DENSE_UNTIL * generation:
            return max(MIN_DELAY_S, dense)
        overdue = running - DENSE_UNTIL * generation
        return max(MIN_DELAY_S, min(TAIL_MAX * e, dense + TAIL_GROWTH * overdue))

    def backoff(self, failures: int, retry_after: float | None) -> float:
        """Delay after `failures` failed GETs in a row, honouring Retry-After."""
        base = DENSE_INTERVAL * self.expected_s
        delay = min(base * (2.0 ** max(0, failures - 1)), PENDING_MAX * self.expected_s)
        delay *= 0.75 + self._rng.random() / 2  # jitter: many tasks must not retry in step
        if retry_after is not None:
            delay = max(delay, retry_after)
        return max(MIN_DELAY_S, delay)


def progress_percent(elapsed: float, expected_s: float) -> float:
    """A smooth percentage for progress notifications, approaching but never reaching 100."""
    share = elapsed / expected_s if expected_s > 0 else 1.0
    if share < 0.9:
        return share * 100
    # Past 90 % slow down asymptotically: a late task still shows movement.
    overdue = share - 0.9
    return 90 + 9.9 * (1 - 1 / (1 + 2 * overdue))
