"""What has been spent, what a call would add, and the guards against surprise spend.

Pure functions over ledger rows and a clock, so a day boundary is tested with an injected time.
"Today" is the server's local day; a task counts on the day it was created. Completed tasks
count what PiAPI consumed; tasks still in flight count their estimate (they are charged if they
complete); failed and cancelled ones count nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import OverBudgetError
from hailuo_mcp.ledger import TaskLedger, TaskRecord
from hailuo_mcp.models import TaskStatus, VideoRequest

# A repeat of the same request within this long returns the earlier task instead of paying again.
DUPLICATE_WINDOW_S = 10 * 60


def day_start(now: float) -> float:
    """Local midnight before `now` (epoch seconds)."""
    moment = datetime.fromtimestamp(now).astimezone()
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def month_start(now: float) -> float:
    """Local midnight of the first day of `now`'s month."""
    moment = datetime.fromtimestamp(now).astimezone()
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def charged_usd(record: TaskRecord, points_per_usd: int) -> float:
    """What a completed task cost (its consumed points, else its estimate); 0 otherwise."""
    if record.status != TaskStatus.COMPLETED:
        return 0.0
    if record.consumed_points:
        return record.consumed_points / points_per_usd
    return record.estimate_usd or 0.0


def in_flight_usd(record: TaskRecord) -> float:
    """What a task still running will cost if it completes."""
    if record.status.is_terminal:
        return 0.0
    return record.estimate_usd or 0.0


class SpendLine(BaseModel):
    """Spend of one model in one period."""

    model: str
    completed: int = 0
    spent_usd: float = 0.0
    in_flight: int = 0
    in_flight_usd: float = 0.0


class SpendPeriod(BaseModel):
    """Spend in one period, in all and by model."""

    since: str = Field(description="Start of the period (local time, ISO 8601)")
    spent_usd: float
    completed: int
    in_flight_usd: float
    in_flight: int
    by_model: list[SpendLine]


class SpendingSummary(BaseModel):
    """Spend from the ledger: today, this month, all time (no upstream call)."""

    today: SpendPeriod
    this_month: SpendPeriod
    all_time: SpendPeriod
    caps: dict[str, float | None] = Field(description="The caps in force (None: no cap)")


def _period(records: list[TaskRecord], since: float, points_per_usd: int) -> SpendPeriod:
    lines: dict[str, SpendLine] = {}
    for record in records:
        if record.created_at < since:
            continue
        line = lines.setdefault(record.model or "unknown", SpendLine(model=record.model or "?"))
        if record.status == TaskStatus.COMPLETED:
            line.completed += 1
            line.spent_usd += charged_usd(record, points_per_usd)
        elif not record.status.is_terminal:
            line.in_flight += 1
            line.in_flight_usd += in_flight_usd(record)
    by_model = [
        line.model_copy(
            update={
                "spent_usd": round(line.spent_usd, 4),
                "in_flight_usd": round(line.in_flight_usd, 4),
            }
        )
        for line in sorted(lines.values(), key=lambda line: line.model)
    ]
    return SpendPeriod(
        since=datetime.fromtimestamp(since).astimezone().isoformat(timespec="seconds")
        if since > 0
        else "",
        spent_usd=round(sum(line.spent_usd for line in by_model), 4),
        completed=sum(line.completed for line in by_model),
        in_flight_usd=round(sum(line.in_flight_usd for line in by_model), 4),
        in_flight=sum(line.in_flight for line in by_model),
        by_model=by_model,
    )


def summarize(records: Iterable[TaskRecord], settings: Settings, now: float) -> SpendingSummary:
    """Today, this month and all time, by model, with counts."""
    rows = list(records)
    points = settings.points_per_usd
    return SpendingSummary(
        today=_period(rows, day_start(now), points),
        this_month=_period(rows, month_start(now), points),
        all_time=_period(rows, 0.0, points),
        caps={
            "HAILUO_MAX_COST_PER_CALL_USD": settings.max_cost_per_call_usd,
            "HAILUO_MAX_SPEND_PER_DAY_USD": settings.max_spend_per_day_usd,
            "HAILUO_CONFIRM_ABOVE_USD": settings.confirm_above_usd,
        },
    )


def check_caps(
    price_usd: float, today: Iterable[TaskRecord], settings: Settings, now: float
) -> None:
    """Refuse, before any create, a call that would pass a cap; say the figures and the knob."""
    per_call = settings.max_cost_per_call_usd
    if per_call is not None and price_usd > per_call + 1e-9:
        raise OverBudgetError(
            f"This video costs ${price_usd:.2f}, above the server's cap of ${per_call:.2f} per "
            "call (HAILUO_MAX_COST_PER_CALL_USD). Nothing was created. Choose a cheaper "
            "combination (estimate_cost), or raise HAILUO_MAX_COST_PER_CALL_USD."
        )
    per_day = settings.max_spend_per_day_usd
    if per_day is None:
        return
    since = day_start(now)
    rows = [r for r in today if r.created_at >= since]
    spent = sum(charged_usd(r, settings.points_per_usd) for r in rows)
    pending = sum(in_flight_usd(r) for r in rows)
    if spent + pending + price_usd > per_day + 1e-9:
        raise OverBudgetError(
            f"Today's spend would reach ${spent + pending + price_usd:.2f}: ${spent:.2f} spent, "
            f"${pending:.2f} in tasks still running, and ${price_usd:.2f} for this video, above "
            f"the server's cap of ${per_day:.2f} per day (HAILUO_MAX_SPEND_PER_DAY_USD). Nothing "
            "was created. Wait for tomorrow (the server's local day), or raise "
            "HAILUO_MAX_SPEND_PER_DAY_USD."
        )


def same_request(record: TaskRecord, request: VideoRequest, image_source: str | None) -> bool:
    """Whether a recorded task was made from exactly this request."""
    return (
        record.origin == "created"
        and record.prompt == request.prompt
        and record.model == request.model
        and record.duration == request.duration
        and record.resolution == request.resolution
        and (record.image_source or record.image_url) == image_source
        # Not in the list, but a different expand_prompt makes a different video.
        and record.expand_prompt in (None, request.expand_prompt)
    )


def find_duplicate(
    records: Iterable[TaskRecord], request: VideoRequest, image_source: str | None, now: float
) -> TaskRecord | None:
    """The newest task made from this request in the last 10 minutes, in flight or completed."""
    since = now - DUPLICATE_WINDOW_S
    for record in sorted(records, key=lambda r: r.created_at, reverse=True):
        if record.created_at < since:
            continue
        if record.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            continue
        if same_request(record, request, image_source):
            return record
    return None


# A balance seen this recently is trusted for the "will not cover it" warning.
BALANCE_FRESH_S = 10 * 60


class Balance(BaseModel):
    """The PiAPI account's balance, as GET /account/info gave it."""

    usd: float = Field(description="equivalent_in_usd: what the balance is worth")
    available_credits: int | None = None
    frozen_credits: int | None = Field(
        default=None, description="Credits held for tasks still running"
    )
    used_credits: int | None = None
    checked_at: str = Field(description="When it was read (local time)")

    @classmethod
    def from_account(cls, data: dict[str, object], now: float) -> Balance:
        """Read PiAPI's account object tolerantly."""
        credits = data.get("credit_pack_info")
        pack = credits if isinstance(credits, dict) else {}

        def number(value: object) -> int | None:
            return (
                int(value)
                if isinstance(value, int | float) and not isinstance(value, bool)
                else None
            )

        usd = data.get("equivalent_in_usd")
        return cls(
            usd=round(float(usd), 4) if isinstance(usd, int | float) else 0.0,
            available_credits=number(pack.get("available_credits")),
            frozen_credits=number(pack.get("frozen_credits")),
            used_credits=number(pack.get("used_credits")),
            checked_at=datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds"),
        )


def wall_clock() -> float:
    """The default clock (epoch seconds); tests inject their own."""
    return time.time()


class CostGuard:
    """The checks against surprise spend that need the ledger: repeats, caps, the summary."""

    def __init__(self, settings: Settings, ledger: TaskLedger, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._ledger = ledger
        self._clock = clock
        # Per owner: each caller may pay with an account of its own.
        self._balances: dict[str, tuple[Balance, float]] = {}

    def saw_balance(self, balance: Balance, owner: str) -> None:
        """Remember the balance just read, for the cover warning."""
        self._balances[owner] = (balance, self._clock())

    def balance_warning(self, price_usd: float, owner: str) -> str | None:
        """A sentence when a balance seen in the last 10 minutes will not cover this price."""
        if (seen_balance := self._balances.get(owner)) is None:
            return None
        balance, seen = seen_balance
        age = self._clock() - seen
        if age > BALANCE_FRESH_S or balance.usd >= price_usd:
            return None
        return (
            f"Your PiAPI balance was ${balance.usd:.2f} {max(1, round(age / 60))} min ago, less "
            f"than this video's ${price_usd:.2f}: PiAPI may refuse it or fail it. Top up at "
            "https://piapi.ai/workspace."
        )

    async def duplicate_of(self, request: VideoRequest, owner: str) -> TaskRecord | None:
        """The task `owner` made from this very request in the last 10 minutes, if any."""
        now = self._clock()
        recent = await self._ledger.created_since(now - DUPLICATE_WINDOW_S, owner=owner)
        return find_duplicate(recent, request, request.image_url, now)

    async def within_caps(self, price_usd: float, owner: str) -> None:
        """Raise OverBudgetError if this call would pass a cap (caps are per owner)."""
        settings = self._settings
        if settings.max_cost_per_call_usd is None and settings.max_spend_per_day_usd is None:
            return
        now = self._clock()
        today = await self._ledger.created_since(day_start(now), owner=owner)
        check_caps(price_usd, today, settings, now)

    async def spending(self, owner: str) -> SpendingSummary:
        """`owner`'s spend from the ledger: today, this month, all time."""
        rows = await self._ledger.created_since(0.0, owner=owner)
        return summarize(rows, self._settings, self._clock())
