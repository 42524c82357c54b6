"""Duration model: how long a Hailuo task queues and generates.

The only observed task (the example on PiAPI's Hailuo page: v2.3, 6 s, 768p) spent 1 s
queued and 76 s generating. The project's notes on PiAPI's contract (their "Timing" part) add
what providers say: Hailuo 2.3 takes approximately 30-90 seconds per clip, depending on scene
complexity and queue load, and 2.3-fast typically 20-50 seconds; 10 s and 1080p clips take
longer. For one model, "30-90 s" is a log-normal spread (sigma) of roughly 0.3 around the
median, not 0.1, and that is the default here. The model draws both phases from log-normal
distributions:

* generation: median ``generate_median_s`` (76 s, the example task) for v2.3 · 6 s · 768,
  multiplied by ``fast_factor`` (0.5) for v2.3-fast, ``ten_seconds_factor`` (1.6) for 10 s
  clips and ``full_hd_factor`` (1.4) for 1080p; spread ``generate_sigma`` (0.3, so the middle
  90 % of v2.3 · 6 s · 768 tasks take about 46-124 s), clamped to
  ``[median / generate_clamp, median * generate_clamp]``. A narrower spread is a setting
  (``TimingParams(generate_sigma=0.12)``: 62-92 s, what the emulator drew before);
  docs/PERFORMANCE.md shows how the poll schedule fares at 0.05-0.5;
* queue: median ``queue_median_s`` (1.5 s) with a long tail (``queue_sigma`` 0.9: the 95th
  percentile is about 6.6 s), plus ``queue_per_active_s`` for every task already queued or
  running (0 by default: queueing does not grow with load unless asked), capped at
  ``queue_max_s``.

``sample_durations`` is pure (all randomness comes from the ``rng`` argument), so benchmarks
can simulate thousands of tasks without HTTP. Most tests bypass the model with
``EmulatorConfig.fixed_durations``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class TimingParams:
    """Knobs of the duration model, in emulated seconds."""

    queue_median_s: float = 1.5
    queue_sigma: float = 0.9
    queue_max_s: float = 120.0
    queue_per_active_s: float = 0.0
    generate_median_s: float = 76.0
    generate_sigma: float = 0.3  # providers' "30-90 s" for one model (see above)
    generate_clamp: float = 3.0
    fast_factor: float = 0.5
    ten_seconds_factor: float = 1.6
    full_hd_factor: float = 1.4

    def __post_init__(self) -> None:
        if self.queue_median_s < 0 or self.generate_median_s <= 0:
            raise ValueError("medians must be positive")
        if self.queue_sigma < 0 or self.generate_sigma < 0:
            raise ValueError("sigmas must not be negative")
        if self.generate_clamp < 1:
            raise ValueError("generate_clamp must be at least 1")


DEFAULT_TIMING = TimingParams()


def generation_median(
    model: str, duration: int, resolution: int, params: TimingParams = DEFAULT_TIMING
) -> float:
    """Median generation time in seconds for one model, duration and resolution."""
    median = params.generate_median_s
    if model == "v2.3-fast":
        median *= params.fast_factor
    if duration >= 10:
        median *= params.ten_seconds_factor
    if resolution >= 1080:
        median *= params.full_hd_factor
    return median


def sample_durations(
    rng: random.Random,
    model: str,
    duration: int,
    resolution: int,
    params: TimingParams = DEFAULT_TIMING,
    *,
    active: int = 0,
) -> tuple[float, float]:
    """Draw ``(queue_s, generate_s)`` for one task; ``active`` counts tasks already in flight."""
    queue_s = params.queue_median_s * math.exp(rng.gauss(0.0, params.queue_sigma))
    queue_s = min(queue_s + params.queue_per_active_s * active, params.queue_max_s)
    median = generation_median(model, duration, resolution, params)
    generate_s = median * math.exp(rng.gauss(0.0, params.generate_sigma))
    generate_s = min(
        max(generate_s, median / params.generate_clamp), median * params.generate_clamp
    )
    return queue_s, generate_s
