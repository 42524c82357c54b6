"""The seed's price table in USD and points."""

from __future__ import annotations

import pytest

from hailuo_mcp.errors import InputError
from hailuo_mcp.pricing import estimate


@pytest.mark.parametrize(
    ("model", "duration", "resolution", "usd", "points"),
    [
        ("v2.3", 6, 768, 0.23, 2_300_000),
        ("v2.3", 10, 768, 0.45, 4_500_000),
        ("v2.3", 6, 1080, 0.46, 4_600_000),
        ("v2.3-fast", 6, 768, 0.16, 1_600_000),
        ("v2.3-fast", 10, 768, 0.26, 2_600_000),
        ("v2.3-fast", 6, 1080, 0.26, 2_600_000),
    ],
)
def test_every_supported_combination_has_the_seed_price(
    model: str, duration: int, resolution: int, usd: float, points: int
) -> None:
    price = estimate(model, duration, resolution, points_per_usd=10_000_000)  # type: ignore[arg-type]
    assert (price.usd, price.points) == (usd, points)


def test_1080p_with_10_seconds_has_no_price_and_says_why() -> None:
    with pytest.raises(InputError, match="1080 with duration=10 is not supported"):
        estimate("v2.3", 10, 1080, points_per_usd=10_000_000)
