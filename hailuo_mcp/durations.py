"""How long one kind of task takes: its queue and generation times as distributions, pure.

`Durations` is what the poll schedule plans against. Before any history it holds PiAPI's page:
the example task (v2.3 · 6 s · 768) queued 1 s and generated 76 s (scaled per model, duration
and resolution by the caller), with the spread the schedule was first tuned for (PAGE_SIGMA).
With history (completed tasks of the same model, duration and resolution, from the ledger),
each task counts as a small log-normal bump around its own time: a kernel density in log time,
so 30 tasks make a smooth distribution rather than 30 spikes. The page's figures stay in as
PRIOR_TASKS pseudo-tasks, so a handful of tasks moves the distribution without owning it.

It also names a guard: a wide log-normal spread around the same centre (`centre_s`,
`guard_sigma`). The schedule keeps a few polls wherever the guard could put a completion,
because its promise (never worse than a fixed 15 s poller) must hold while the learnt figures
are still wrong, or when the account's times change. Before history the guard is as wide as
any spread the promise covers (0.5); history narrows it towards a multiple of the spread it
shows, since an account whose tasks all take 70-85 s should not pay every task for a poll
that insures against 30 s ones.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

# PiAPI's example task: 1 s queued and 76 s generating, 77 s from create to end.
PAGE_TOTAL_S = 77.0
PAGE_QUEUE_SHARE = 1 / 77
# Spreads (sigma of log seconds) assumed before history: generation as the schedule was first
# tuned for (docs/PERFORMANCE.md), and queues of a second or two with a long tail.
PAGE_SIGMA = 0.12
PAGE_QUEUE_SIGMA = 0.9
# The page's figures weigh as much as this many completed tasks: enough to steady the first
# few, little enough that 30 slow tasks move the window off the page's 76 s.
PRIOR_TASKS = 1.0
# The guard's spread. Before history, the widest the schedule promises to handle ("30-90 s" is
# about 0.3; 0.5 is margin). History narrows it towards GUARD_FACTOR times the spread it shows,
# never under GUARD_FLOOR: a sparse poll that insures against a spread the account does not
# have is paid by every task.
GUARD_SIGMA = 0.5
GUARD_FACTOR = 2.5
GUARD_FLOOR = 0.25
# Kernel width in log time: Silverman's rule, never narrower than this (identical times would
# otherwise make a spike, polled densely around and nowhere else).
MIN_BANDWIDTH = 0.04
ONE_TASK_BANDWIDTH = 0.2  # one task says little of the spread: a bump as wide as a real one
POINTS_PER_BUMP = 9

_NORMAL = statistics.NormalDist()
_Z = tuple(_NORMAL.inv_cdf((i + 0.5) / POINTS_PER_BUMP) for i in range(POINTS_PER_BUMP))

Bump = tuple[float, float, float]  # (log median, sigma, weight)


@dataclass(frozen=True)
class Distribution:
    """Seconds as weighted points; between them the CDF is a straight line."""

    points: tuple[tuple[float, float], ...]  # (seconds, weight), sorted; weights sum to 1
    _xs: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _ys: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Each point carries its mass around it: the CDF passes through its middle.
        values = [v for v, _ in self.points]
        before = [0.0, *accumulate(w for _, w in self.points)]
        middles = [(a + b) / 2 for a, b in zip(before, before[1:], strict=False)]
        object.__setattr__(self, "_xs", (values[0] * 0.9, *values, values[-1] * 1.1))
        object.__setattr__(self, "_ys", (0.0, *middles, 1.0))

    @classmethod
    def of(cls, bumps: Sequence[Bump]) -> Distribution:
        """A mixture of log-normal bumps, each as POINTS_PER_BUMP points at its quantiles."""
        total = sum(weight for _, _, weight in bumps)
        points = sorted(
            (math.exp(mu + sigma * z), weight / total / POINTS_PER_BUMP)
            for mu, sigma, weight in bumps
            for z in _Z
        )
        return cls(tuple(points))

    def cdf(self, seconds: float) -> float:
        """Share of tasks done within `seconds`."""
        xs, ys = self._xs, self._ys
        i = bisect.bisect_right(xs, seconds)
        if i == 0:
            return 0.0
        if i >= len(xs):
            return 1.0
        x0, x1 = xs[i - 1], xs[i]
        return ys[i - 1] + (ys[i] - ys[i - 1]) * (seconds - x0) / (x1 - x0)

    def quantile(self, share: float) -> float:
        """Seconds within which `share` (0..1) of tasks are done."""
        xs, ys = self._xs, self._ys
        i = min(max(1, bisect.bisect_left(ys, share)), len(ys) - 1)
        y0, y1 = ys[i - 1], ys[i]
        return xs[i - 1] + (xs[i] - xs[i - 1]) * ((share - y0) / (y1 - y0) if y1 > y0 else 0.0)


@dataclass(frozen=True)
class Durations:
    """Generation and queue seconds of one kind of task, on our clock."""

    generation: Distribution
    queue: Distribution
    centre_s: float  # the median generation time the guard is centred on
    guard_sigma: float = GUARD_SIGMA
    tasks: int = 0  # completed tasks it was learnt from (0: the page's figures)

    @classmethod
    def from_page(cls, expected_s: float) -> Durations:
        """The page's figures for a task expected to take `expected_s` from create to end."""
        return cls.learnt((), expected_s)

    @classmethod
    def learnt(cls, history: Sequence[tuple[float | None, float]], expected_s: float) -> Durations:
        """Blend `(queue_s, generation_s)` of completed tasks (our seconds) with the page's."""
        page_generation = math.log(expected_s * (1 - PAGE_QUEUE_SHARE))
        page_queue = math.log(expected_s * PAGE_QUEUE_SHARE)
        generation = [math.log(g) for _, g in history if g > 0]
        # A task may start the moment it is created: a queue of 0 s has no log, so floor it.
        floor = 1e-3 * expected_s
        queue = [math.log(max(q, floor)) for q, g in history if q is not None and q >= 0]
        weight = len(generation) + PRIOR_TASKS
        centre = (sum(generation) + PRIOR_TASKS * page_generation) / weight
        guard = GUARD_SIGMA
        if len(generation) >= 2:
            shown = max(GUARD_FLOOR, GUARD_FACTOR * statistics.stdev(generation))
            guard = min(GUARD_SIGMA, (PRIOR_TASKS * GUARD_SIGMA + len(generation) * shown) / weight)
        return cls(
            generation=Distribution.of(
                [*_bumps(generation), (page_generation, PAGE_SIGMA, PRIOR_TASKS)]
            ),
            queue=Distribution.of([*_bumps(queue), (page_queue, PAGE_QUEUE_SIGMA, PRIOR_TASKS)]),
            centre_s=math.exp(centre),
            guard_sigma=guard,
            tasks=len(generation),
        )

    def guard_cdf(self, seconds: float) -> float:
        """Share of tasks done within `seconds` if the spread were as wide as the guard's."""
        if seconds <= 0:
            return 0.0
        return _NORMAL.cdf(math.log(seconds / self.centre_s) / self.guard_sigma)

    def guard_quantile(self, share: float) -> float:
        """Inverse of `guard_cdf`."""
        share = min(max(share, 1e-9), 1 - 1e-9)
        return self.centre_s * math.exp(self.guard_sigma * _NORMAL.inv_cdf(share))


def _bumps(logs: Sequence[float]) -> list[Bump]:
    """Kernel bumps for `logs`, as wide as Silverman's rule of thumb says.

    The kernel widens the sample's spread a little (0.12 becomes ~0.13 with 30 tasks): a
    hedge for what 30 tasks cannot know of the tails the window's edges are set by.
    """
    if len(logs) < 2:
        return [(x, ONE_TASK_BANDWIDTH, 1.0) for x in logs]
    spread = statistics.stdev(logs)
    q1, _, q3 = statistics.quantiles(logs, n=4)
    robust = min(spread, (q3 - q1) / 1.34) or spread
    width = max(MIN_BANDWIDTH, 0.9 * robust * len(logs) ** -0.2)
    return [(x, width, 1.0) for x in logs]
