"""When to ask PiAPI again: polls placed where tasks of this kind are likely to end.

A schedule knows two phases. While the task is queued it looks every few seconds. The first
answer that says `processing` tells it when generation began (the likeliest moment between the
last queued answer and this one, by the queue times it knows), and from then on every poll is
placed relative to that start: queue time, which varies most and says nothing about how long
generation takes, drops out.

Where the polls go is a `PollPlan`, a pure function of `Durations` (durations.py): the page's
figures, or what completed tasks of the same model, duration and resolution took (the flow
reads them from the ledger, history.py). The plan has the shape that needs the fewest GETs for
a p95 delay (docs/PERFORMANCE.md, bench/completion.py):

* a dense window from the 4th to the 98.5th percentile of generation time, one poll every
  `spacing`. A completion inside it waits at most one spacing; those before and after it
  (under 5 % together) may wait longer, so the p95 delay is about one spacing. The window
  opens late because every task pays for the polls before it, and closes late because only
  the tasks still running pay for the polls after the mode;
* the spacing is TARGET_DELAY (1.9 s at 77 s) or, when the learnt spread is too wide to hold
  it within GET_BUDGET, the finest spacing that fits: the budget buys the least delay;
* before the window, a few sparse polls, walked back from it so that no gap leaves more than
  ROBUST_MISS of the guard (a wide spread around the same centre) waiting over ROBUST_DELAY.
  While the figures are wrong (before history, or when the account's times change) the p95
  stays under a fixed 15 s poller's 14.3 s at any spread up to 0.5. Before history this costs
  one GET per task more than a schedule that trusts the page's spread;
* after the window, the spacing grows by TAIL_GROWTH of the overdue time, up to TAIL_MAX, and
  it never stops before the wait budget ends.

With webhooks on, PiAPI says when a task ends: polls are only a safety net for a missed
delivery, one look when nine tasks in ten are done, then one every SAFETY_INTERVAL.

Every figure is a fraction of the expected duration E, so shrinking HAILUO_EXPECTED_SECONDS
(tests, the demo) shrinks the whole schedule with the emulator's clock. The gaps compared with
a fixed poller (ROBUST_DELAY, TAIL_MAX) are fractions of the shorter of E and the v2.3 · 6 s ·
768 figure, so a long clip does not stretch them past 15 s.
"""

from __future__ import annotations

import bisect
import functools
import random
from dataclasses import dataclass, field, replace

from hailuo_mcp.durations import PAGE_QUEUE_SHARE, Durations
from hailuo_mcp.models import TaskStatus

# Inferred, not stated by PiAPI: how much longer than v2.3 · 6 s · 768 a combination takes.
# Providers quote 30-90 s for v2.3 and 20-50 s for v2.3-fast; longer and larger clips take
# longer. Until there is history: then the learnt times replace them.
_MODEL_FACTOR = {"v2.3": 1.0, "v2.3-fast": 0.5}
_DURATION_FACTOR = {6: 1.0, 10: 1.6}
_RESOLUTION_FACTOR = {768: 1.0, 1080: 1.4}
# One jitter source for every schedule: a Random's state is 2.5 KB, a lot per task in flight.
_JITTER = random.Random()

# Fractions of the expected duration E (E = 77 s gives the figures in brackets).
QUEUE_SHARE = PAGE_QUEUE_SHARE  # the page's task queued 1 s of 77
FIRST_POLL = 0.03  # the first look comes no sooner [2.3 s] ...
FIRST_LOOK_SHARE = 0.9  # ... nor before nine queues in ten have ended [3.5 s before history]
PENDING_INTERVAL = 0.04  # while queued [3.1 s], growing x1.25 up to PENDING_MAX
PENDING_MAX = 0.12  # [9.2 s]
WINDOW_FROM = 0.04  # the dense window, as quantiles of generation time
WINDOW_UNTIL = 0.985
TARGET_DELAY = 0.025  # spacing in the window [1.9 s]: the p95 delay, under the 2 s target
MAX_SPACING = 0.1  # [7.7 s]
GET_BUDGET = 20.0  # expected GETs per task, queue included; a wide spread spends it
ROBUST_DELAY = 0.15  # [11.5 s] a wait the guard's completions should rarely see ...
ROBUST_MISS = 0.03  # ... at most this share of the guard per sparse gap
TAIL_GROWTH = 0.12  # after the window, spacing grows by this share of the overdue time
TAIL_MAX = 0.1  # up to [7.7 s]
SAFETY_SHARE = 0.9  # with webhooks: one look when this share of tasks is done
SAFETY_INTERVAL = 0.1  # then every [7.7 s]
MIN_DELAY_S = 0.02
_SEARCH_STEPS = 12


def expected_seconds(base_s: float, model: str, duration: int, resolution: int) -> float:
    """Expected duration of one task: the base (v2.3 · 6 s · 768) scaled for the combination."""
    return (
        base_s
        * _MODEL_FACTOR.get(model, 1.0)
        * _DURATION_FACTOR.get(duration, 1.0)
        * _RESOLUTION_FACTOR.get(resolution, 1.0)
    )


@dataclass(frozen=True)
class PollPlan:
    """Where one kind of task is polled; `offsets` count from the generation start."""

    first_look: float  # seconds after the create
    offsets: tuple[float, ...]  # the sparse polls, then the dense window
    spacing: float
    tail_max: float  # the longest gap after the window, in seconds
    safety_from: float  # with webhooks: the look after the start, then every SAFETY_INTERVAL
    gets: float  # expected GETs per task when the durations are right

    def tail_delay(self, running: float) -> float:
        """Delay after the last offset: growing with the overdue time, capped."""
        overdue = max(0.0, running - self.offsets[-1])
        return min(self.tail_max, self.spacing + TAIL_GROWTH * overdue)


@functools.lru_cache(maxsize=256)
def plan_polls(durations: Durations, expected_s: float, base_s: float) -> PollPlan:
    """The plan with the least delay its GETs allow: see the module docstring.

    `base_s` is the expected duration of v2.3 · 6 s · 768 (HAILUO_EXPECTED_SECONDS): gaps that
    are compared with a fixed poller's 15 s are capped by it, not by a longer clip's duration.
    """
    first_look = max(FIRST_POLL * expected_s, durations.queue.quantile(FIRST_LOOK_SHARE))
    queued = _pending_gets(durations, expected_s, first_look)
    limit = min(expected_s, base_s)

    def plan(spacing: float) -> PollPlan:
        offsets = _offsets(durations, spacing, ROBUST_DELAY * limit)
        draft = PollPlan(first_look, offsets, spacing, TAIL_MAX * limit, 0.0, 0.0)
        return replace(
            draft,
            safety_from=durations.generation.quantile(SAFETY_SHARE),
            gets=queued + _gets(durations, draft),
        )

    best = plan(TARGET_DELAY * expected_s)
    if best.gets <= GET_BUDGET:
        return best
    # Too wide to hold the target within the budget: the finest spacing that fits.
    low, high = best.spacing, MAX_SPACING * expected_s
    best = plan(high)
    for _ in range(_SEARCH_STEPS):
        middle = plan((low + high) / 2)
        if middle.gets > GET_BUDGET:
            low = middle.spacing
        else:
            high, best = middle.spacing, middle
    return best


def _offsets(durations: Durations, spacing: float, robust: float) -> tuple[float, ...]:
    """Sparse polls walked back from the window, then the window at `spacing`."""
    generation = durations.generation
    # A completion up to one spacing before the window's first poll waits no longer than one
    # inside it: the window opens one spacing after the WINDOW_FROM quantile.
    start = generation.quantile(WINDOW_FROM) + spacing
    end = generation.quantile(WINDOW_UNTIL)
    sparse: list[float] = []
    later = start
    while later > robust:
        # Completions in (poll, later - robust] wait longer than `robust`: keep them few.
        waits_long = durations.guard_cdf(later - robust) - ROBUST_MISS
        if waits_long <= 0:
            break
        later = durations.guard_quantile(waits_long)
        sparse.append(later)
    window = [start]
    while window[-1] < end:
        window.append(window[-1] + spacing)
    return (*reversed(sparse), *window)


def _gets(durations: Durations, plan: PollPlan) -> float:
    """Expected GETs after the start: a poll is made while the task is still running."""
    cdf = durations.generation.cdf
    total, previous = 0.0, 0.0
    for offset in plan.offsets:
        total += 1 - cdf(previous)
        previous = offset
    while (left := 1 - cdf(previous)) > 1e-3:
        total += left
        previous += plan.tail_delay(previous)
    return total + (1 - cdf(previous))


def _pending_gets(durations: Durations, expected_s: float, first_look: float) -> float:
    """Expected GETs until one says the task started: the first look, then while queued."""
    total, at, interval = 1.0, first_look, PENDING_INTERVAL * expected_s
    while (queued := 1 - durations.queue.cdf(at)) > 1e-3:
        total += queued
        at += interval
        interval = min(interval * 1.25, PENDING_MAX * expected_s)
    return total


@functools.lru_cache(maxsize=64)
def page_durations(expected_s: float) -> Durations:
    """The page's figures for `expected_s`, built once."""
    return Durations.from_page(expected_s)


@dataclass
class PollSchedule:
    """Delays between GETs for one task; times are seconds since the wait began."""

    expected_s: float
    started_at: float | None = None
    safety_net: bool = False  # webhooks tell the end; polls only catch a missed delivery
    durations: Durations | None = None  # None: the page's figures
    base_s: float | None = None  # HAILUO_EXPECTED_SECONDS (see plan_polls); None: expected_s
    _plan: PollPlan = field(init=False, repr=False)
    _last_pending_at: float | None = None
    _pending_interval: float = 0.0
    _rng: random.Random = field(default=_JITTER, repr=False)

    def __post_init__(self) -> None:
        if self.durations is None:
            self.durations = page_durations(self.expected_s)
        base = self.expected_s if self.base_s is None else self.base_s
        self._plan = plan_polls(self.durations, self.expected_s, base)
        self._pending_interval = PENDING_INTERVAL * self.expected_s

    @property
    def plan(self) -> PollPlan:
        """Where this task's polls go."""
        return self._plan

    @property
    def generation_s(self) -> float:
        """Median generation time, without the queue."""
        assert self.durations is not None  # set in __post_init__
        return self.durations.generation.quantile(0.5)

    def observe(self, elapsed: float, status: TaskStatus) -> None:
        """Learn from one GET answer (its status, seen `elapsed` seconds into the wait)."""
        if self.started_at is not None:
            return
        if status.is_started:
            before = self._last_pending_at if self._last_pending_at is not None else 0.0
            self.started_at = self._likely_start(before, elapsed)
        else:
            if self._last_pending_at is not None:
                self._pending_interval = min(
                    self._pending_interval * 1.25, PENDING_MAX * self.expected_s
                )
            self._last_pending_at = elapsed

    def _likely_start(self, before: float, after: float) -> float:
        """When generation began between a queued answer and a started one.

        The median of the known queue times within that span, or its middle when they say
        nothing of it: queues are mostly short, so a start is likelier early in the span.
        """
        assert self.durations is not None
        queue = self.durations.queue
        low, high = queue.cdf(before), queue.cdf(after)
        if high - low < 1e-3:
            return (before + after) / 2
        return min(max(queue.quantile((low + high) / 2), before), after)

    def assume_started(self, started_ago_s: float, elapsed: float) -> None:
        """Seed the schedule for a task already running (resumed, or looked up)."""
        self.started_at = elapsed - max(0.0, started_ago_s)

    def next_delay(self, elapsed: float) -> float:
        """Seconds from `elapsed` until the next GET."""
        plan = self._plan
        if self.safety_net:
            return max(MIN_DELAY_S, self._safety_delay(elapsed))
        if self.started_at is None:
            if self._last_pending_at is None:
                target = plan.first_look
            else:
                target = self._last_pending_at + self._pending_interval
            return max(MIN_DELAY_S, target - elapsed)
        running = elapsed - self.started_at
        # A poll that woke a hair before its offset must not be followed by a second at once.
        index = bisect.bisect_right(plan.offsets, running + 0.1 * plan.spacing)
        if index < len(plan.offsets):
            return max(MIN_DELAY_S, plan.offsets[index] - running)
        return max(MIN_DELAY_S, plan.tail_delay(running))

    def _safety_delay(self, elapsed: float) -> float:
        """With webhooks: one look when most tasks are done, then every SAFETY_INTERVAL."""
        assert self.durations is not None
        start = self.started_at
        if start is None:
            start = self.durations.queue.quantile(0.5)
        due = start + self._plan.safety_from
        if elapsed < due - 0.1 * self._plan.spacing:
            return due - elapsed
        return SAFETY_INTERVAL * self.expected_s

    def backoff(self, failures: int, retry_after: float | None) -> float:
        """Delay after `failures` failed GETs in a row, honouring Retry-After."""
        base = TARGET_DELAY * self.expected_s
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
