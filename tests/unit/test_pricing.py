"""The seed's price table in USD and points."""

from __future__ import annotations

import re

import pytest

from hailuo_mcp.errors import InputError
from hailuo_mcp.pricing import estimate


@pytest.mark.parametrize(
    ("model", "duration", "resolution", "usd", "points"),
    [
        ("v2.3", 6, 768, 0.23, 2_300_000),
        ("v2.3", 10, 768, 0.45, 4_500_000),
        ("v2.3", 6, 1080, 0.40, 4_000_000),
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


# The seed's price rows exactly as the page flattens them (price | duration | resolution).
SEED_ROWS = {
    "v2.3": ["$0.236768", "$0.4510768", "$0.461080"],
    "v2.3-fast": ["$0.166768", "$0.2610768", "$0.2661080"],
}


def read_seed_row(row: str) -> tuple[float, int, int]:
    """Split a flattened row: the resolution is 768 or 1080 and the duration 6 or 10."""
    match = re.fullmatch(r"\$(\d+\.\d*?)(6|10)(768|1080)", row)
    assert match, row
    price, duration, resolution = match.groups()
    return float(price), int(duration), int(resolution)


@pytest.mark.parametrize(("model", "row"), [(m, r) for m, rows in SEED_ROWS.items() for r in rows])
def test_the_price_table_is_the_seed_read_as_three_columns(model: str, row: str) -> None:
    usd, duration, resolution = read_seed_row(row)
    price = estimate(model, duration, resolution, points_per_usd=10_000_000)  # type: ignore[arg-type]
    assert price.usd == usd


def test_v23_six_seconds_at_1080p_costs_forty_cents_not_forty_six() -> None:
    assert read_seed_row("$0.461080") == (0.4, 6, 1080)
    assert estimate("v2.3", 6, 1080, points_per_usd=10_000_000).usd == 0.40
