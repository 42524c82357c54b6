"""What completed tasks took, read from the ledger: the durations each new wait plans against.

`TimingHistory.durations(model, duration, resolution, expected_s)` reads PiAPI's own times of
the newest completed tasks of that kind (HISTORY_LIMIT; PiAPI's clock on both ends, so a skew
between its clock and ours drops out) and blends them with the page's figures
(`Durations.learnt`). PiAPI's seconds become ours through `clock_scale`, which is
HAILUO_EXPECTED_SECONDS over the page's 77 s: 1 against PiAPI, and the emulator's compression
in the demo and the tests, where that setting shrinks with the clock.

A read is kept for a while (REFRESH_SHARE of the expected duration), so a thousand waits that
start together cost one ledger call, not a thousand, and a new completion counts within a
fraction of a task's time. A ledger that cannot be read leaves the page's figures: a wait never
fails for want of history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio

from hailuo_mcp.durations import PAGE_TOTAL_S, Durations
from hailuo_mcp.errors import StorageError
from hailuo_mcp.ledger import TaskLedger

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 50  # recent enough to follow a change in the account's times
REFRESH_SHARE = 0.5
# A time beyond this many expected durations is not a generation (a task resumed days later,
# a broken clock): it would only stretch the distribution.
MAX_SHARE = 20.0

Kind = tuple[str, int, int]  # model, duration, resolution


class TimingHistory:
    """Durations learnt per model, duration and resolution, from one ledger."""

    def __init__(
        self,
        ledger: TaskLedger,
        *,
        clock_scale: float = 1.0,
        limit: int = HISTORY_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._scale = clock_scale
        self._limit = limit
        self._clock = clock
        self._known: dict[Kind, tuple[float, Durations]] = {}
        self._lock = anyio.Lock()

    @classmethod
    def for_expected(cls, ledger: TaskLedger, expected_seconds: float) -> TimingHistory:
        """A history whose clock scale follows HAILUO_EXPECTED_SECONDS (see the docstring)."""
        return cls(ledger, clock_scale=expected_seconds / PAGE_TOTAL_S)

    async def durations(
        self, model: str, duration: int, resolution: int, *, expected_s: float
    ) -> Durations:
        """What this kind of task takes, on our clock."""
        kind = (model, duration, resolution)
        async with self._lock:  # one read per refresh, however many waits start at once
            known = self._known.get(kind)
            if known is not None and self._clock() - known[0] < REFRESH_SHARE * expected_s:
                return known[1]
            learnt = await self._read(kind, expected_s)
            self._known[kind] = (self._clock(), learnt)
            return learnt

    async def _read(self, kind: Kind, expected_s: float) -> Durations:
        try:
            rows = await self._ledger.completed_timings(*kind, limit=self._limit)
        except StorageError as exc:
            logger.warning("task history unreadable, polling by the page's figures: %s", exc)
            return Durations.from_page(expected_s)
        history = [
            (None if row.queue_s is None else row.queue_s * self._scale, g)
            for row in rows
            if 0 < (g := row.generation_s * self._scale) <= MAX_SHARE * expected_s
        ]
        return Durations.learnt(history, expected_s)
