"""The seed's price table: USD per generation, and the same in PiAPI points."""

from __future__ import annotations

import functools
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from hailuo_mcp.errors import InputError
from hailuo_mcp.models import Duration, Resolution, Variant

# (model, duration s, resolution) -> USD; charged on successful completion only. The seed's
# tables are three columns (price | duration | resolution) flattened into one string per row:
# "$0.461080" is $0.4 | 6 | 1080, like the fast table's "$0.2661080" = $0.26 | 6 | 1080.
PRICES_USD: dict[tuple[str, int, int], Decimal] = {
    ("v2.3", 6, 768): Decimal("0.23"),
    ("v2.3", 10, 768): Decimal("0.45"),
    ("v2.3", 6, 1080): Decimal("0.40"),
    ("v2.3-fast", 6, 768): Decimal("0.16"),
    ("v2.3-fast", 10, 768): Decimal("0.26"),
    ("v2.3-fast", 6, 1080): Decimal("0.26"),
}


class Estimate(BaseModel):
    """The price of one generation."""

    # Frozen, so that one priced combination can be shared by every call that asks for it.
    model_config = ConfigDict(frozen=True)

    model: Variant
    duration: Duration
    resolution: Resolution
    usd: float
    points: int
    charged_on: str = "successful completion only"


@functools.lru_cache(maxsize=64)
def estimate(
    model: Variant, duration: Duration, resolution: Resolution, *, points_per_usd: int
) -> Estimate:
    """Price one generation; an unsupported combination is an InputError naming the rule.

    Cached: a few combinations exist, and each call in flight would otherwise hold its own.
    """
    price = PRICES_USD.get((model, duration, resolution))
    if price is None:
        if resolution == 1080 and duration == 10:
            rule = "resolution=1080 with duration=10 is not supported"
        else:
            rule = f"no price for model={model}, duration={duration}, resolution={resolution}"
        raise InputError(rule)
    return Estimate(
        model=model,
        duration=duration,
        resolution=resolution,
        usd=float(price),
        points=int(price * points_per_usd),
    )
