"""The emulated clock, RFC 3339 stamps and the duration model."""

from __future__ import annotations

import random
import ssl
import statistics
from datetime import UTC, datetime

import pytest

from hailuo_mcp.emulator import (
    ZERO_TIME,
    EmulatedClock,
    EmulatorConfig,
    TimingParams,
    generation_median,
    rfc3339_ns,
    sample_durations,
)
from tests.support import MANUAL, MakeEmulator, client_for


def test_rfc3339_stamps_carry_nine_fractional_digits_and_z() -> None:
    assert rfc3339_ns(0) == "1970-01-01T00:00:00.000000000Z"
    example_created = "2026-01-25T13:52:23.125177638Z"
    seconds = int(datetime(2026, 1, 25, 13, 52, 23, tzinfo=UTC).timestamp())
    assert rfc3339_ns(seconds * 1_000_000_000 + 125_177_638) == example_created
    assert rfc3339_ns(None) == ZERO_TIME == "0001-01-01T00:00:00Z"


def test_the_clock_runs_speed_times_real_time_plus_advances() -> None:
    real = [0]
    clock = EmulatedClock(100.0, start_ns=0, monotonic_ns=lambda: real[0])
    assert clock.now_ns() == 0
    real[0] = 1_000_000_000  # one real second
    assert clock.now_ns() == 100_000_000_000
    clock.advance(2.5)
    assert clock.now_ns() == 102_500_000_000
    assert clock.real_seconds(77) == pytest.approx(0.77)


@pytest.mark.parametrize("bad", [-1.0, -1e-9])
def test_the_clock_never_goes_back(bad: float) -> None:
    with pytest.raises(ValueError):
        EmulatedClock(1.0).advance(bad)


def test_a_clock_needs_a_positive_speed() -> None:
    with pytest.raises(ValueError):
        EmulatedClock(0)


def test_the_same_seed_draws_the_same_durations() -> None:
    first = [sample_durations(random.Random(5), "v2.3", 6, 768) for _ in range(3)]
    again = [sample_durations(random.Random(5), "v2.3", 6, 768) for _ in range(3)]
    assert first == again


def percentiles(
    model: str, duration: int, resolution: int, params: TimingParams | None = None
) -> tuple[list[float], list[float]]:
    """Every 5th percentile of queue and generation times over 4000 seeded draws."""
    rng = random.Random(1234)
    params = params or TimingParams()
    draws = [sample_durations(rng, model, duration, resolution, params) for _ in range(4000)]
    queue = statistics.quantiles([q for q, _ in draws], n=20)
    generate = statistics.quantiles([g for _, g in draws], n=20)
    return queue, generate


def test_v2_3_six_second_768_tasks_center_on_the_example_task_and_provider_ranges() -> None:
    queue, generate = percentiles("v2.3", 6, 768)
    p5, p50, p95 = generate[0], generate[9], generate[18]
    assert 60 <= p50 <= 80  # the example task on PiAPI's page generated for 76 s
    assert p5 >= 30 and p95 <= 130  # providers: about 30-90 s, longer under load
    assert p5 < 76 < p95
    assert 1.0 <= queue[9] <= 2.0  # the example task queued 1 s
    assert queue[18] < 10  # a few seconds, with a tail


def test_the_default_spread_is_the_providers_30_to_90_seconds_for_one_model() -> None:
    # "30-90 s" for one model reads as a log-normal sigma of about 0.3 around the median.
    _, generate = percentiles("v2.3", 6, 768)
    assert TimingParams().generate_sigma == 0.3
    assert 40 <= generate[0] <= 52 and 110 <= generate[18] <= 135  # middle 90 %: ~46-124 s


def test_the_spread_is_a_setting() -> None:
    _, narrow = percentiles("v2.3", 6, 768, TimingParams(generate_sigma=0.12))
    _, wide = percentiles("v2.3", 6, 768, TimingParams(generate_sigma=0.5))
    assert 58 <= narrow[0] and narrow[18] <= 96  # middle 90 %: ~62-92 s
    assert wide[18] - wide[0] > 2 * (narrow[18] - narrow[0])
    assert narrow[9] == pytest.approx(wide[9], rel=0.05)  # the median stays the example's


def test_fast_tasks_take_half_as_long_within_the_providers_20_to_50_seconds() -> None:
    # The providers' 20-50 s is the middle 80 % at the narrower spread; at the default 0.3 the
    # 90th percentile reaches ~56 s.
    _, fast = percentiles("v2.3-fast", 6, 768, TimingParams(generate_sigma=0.12))
    assert 20 <= fast[1] and fast[17] <= 55  # 10th and 90th percentiles
    assert fast[9] == pytest.approx(generation_median("v2.3", 6, 768) * 0.5, rel=0.05)


@pytest.mark.parametrize(
    ("duration", "resolution", "factor"), [(10, 768, 1.6), (6, 1080, 1.4), (6, 768, 1.0)]
)
def test_longer_and_sharper_clips_scale_the_median(
    duration: int, resolution: int, factor: float
) -> None:
    _, generate = percentiles("v2.3", duration, resolution)
    assert generate[9] == pytest.approx(TimingParams().generate_median_s * factor, rel=0.05)


def test_generation_is_clamped_and_queueing_grows_with_load_when_asked() -> None:
    params = TimingParams(generate_sigma=5.0, queue_per_active_s=0.5, queue_sigma=0.0)
    rng = random.Random(9)
    for _ in range(200):
        queue, generate = sample_durations(rng, "v2.3", 6, 768, params, active=10)
        median = params.generate_median_s
        assert median / 3 <= generate <= median * 3
        assert queue == pytest.approx(1.5 + 5.0)


def test_timing_params_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        TimingParams(generate_median_s=0)
    with pytest.raises(ValueError):
        TimingParams(generate_clamp=0.5)


def test_two_emulators_with_the_same_seed_schedule_tasks_identically(
    make_emulator: MakeEmulator, tls_context: ssl.SSLContext
) -> None:
    request = {
        "model": "hailuo",
        "task_type": "video_generation",
        "input": {"prompt": "autumn wind"},
    }
    spans = []
    for _ in range(2):
        emu = make_emulator(clock=MANUAL, fixed_durations=None, seed=42)
        with client_for(emu, tls_context) as client:
            task_id = client.post("/api/v1/task", json=request).json()["data"]["task_id"]
            emu.advance(1000)
            meta = emu.task(task_id)["meta"]
            spans.append(
                tuple(
                    datetime.fromisoformat(meta[key][:26]).timestamp()
                    - datetime.fromisoformat(meta["created_at"][:26]).timestamp()
                    for key in ("started_at", "ended_at")
                )
            )
    assert spans[0] == pytest.approx(spans[1], abs=1e-3)
    assert spans[0][0] > 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"speed": 0},
        {"envelope_code": 201},
        {"output_key": "url"},
        {"webhook_attempts": 0},
        {"output_size": -1},
        {"fixed_durations": (-1.0, 5.0)},
    ],
)
def test_emulator_config_refuses_nonsense(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(**overrides)  # type: ignore[arg-type]  # deliberately wrong values
