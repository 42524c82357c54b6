"""The reads both SQL ledgers make alike: each statement is built here once.

Statements use `?` placeholders. A backend runs one statement and turns each row (a dict of
column to value) into a result with `_fetch`; one with another paramstyle rewrites the marks
there (PostgresLedger: `%s`). What the backends store differently is theirs to read back:
protocol-task JSON (`_protocol_record`) and the keyset of a page (`_page_after`). PiAPI's time
stamps come back as text from SQLite and as datetimes from PostgreSQL; `_stamp` takes either.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from hailuo_mcp.ledger.records import ProtocolTaskRecord, TaskRecord, TaskTiming
from hailuo_mcp.ledger.values import UNFINISHED_SQL, task_record
from hailuo_mcp.models import TaskStatus

R = TypeVar("R")
Params = tuple[object, ...]

_TIMINGS = (
    "SELECT upstream_created_at, upstream_started_at, upstream_ended_at FROM tasks "
    "WHERE status = 'completed' AND model = ? AND duration = ? AND resolution = ? "
    "AND upstream_started_at IS NOT NULL AND upstream_ended_at IS NOT NULL "
    "ORDER BY created_at DESC LIMIT ?"
)


class SqlReads(ABC):
    """The task and protocol-task reads of a SQL ledger, over the backend's `_fetch`."""

    @abstractmethod
    async def _fetch(
        self, sql: str, params: Params, make: Callable[[dict[str, Any]], R]
    ) -> list[R]:
        """Run the read `sql` (`?` marks) and return `make(row)` for each row, in order."""

    def _protocol_record(self, row: dict[str, Any]) -> ProtocolTaskRecord:
        """A `protocol_tasks` row, its JSON columns already decoded by the driver."""
        return ProtocolTaskRecord.model_validate(row)

    def _page_after(self, created_at: float, task_id: str) -> tuple[str, Params]:
        """The rows after (created_at, id) in newest-first order: a row-value comparison, which
        the (created_at DESC, id DESC) index serves."""
        return "(created_at, id) < (?, ?)", (created_at, task_id)

    async def _tasks(self, conditions: list[str], params: Params, tail: str) -> list[TaskRecord]:
        return await self._fetch(
            f"SELECT * FROM tasks{_where(conditions)}{tail}", params, task_record
        )

    async def get(self, task_id: str, *, owner: str | None = None) -> TaskRecord | None:
        conditions, params = _owned(["task_id = ?"], (task_id,), owner)
        found = await self._tasks(conditions, params, "")
        return found[0] if found else None

    async def recent(
        self, limit: int, status: TaskStatus | None = None, *, owner: str | None = None
    ) -> list[TaskRecord]:
        conditions: list[str] = []
        params: Params = ()
        if status is not None:
            conditions, params = ["status = ?"], (status.value,)
        conditions, params = _owned(conditions, params, owner)
        return await self._tasks(conditions, (*params, limit), " ORDER BY created_at DESC LIMIT ?")

    async def created_since(self, epoch: float, *, owner: str | None = None) -> list[TaskRecord]:
        conditions, params = _owned(["created_at >= ?"], (epoch,), owner)
        return await self._tasks(conditions, params, " ORDER BY created_at")

    async def unfinished(self, max_age_s: float) -> list[TaskRecord]:
        since = time.time() - max_age_s
        return await self._tasks(
            ["created_at >= ?", UNFINISHED_SQL], (since,), " ORDER BY created_at"
        )

    async def completed_timings(
        self, model: str, duration: int, resolution: int, limit: int
    ) -> list[TaskTiming]:
        timings = await self._fetch(_TIMINGS, (model, duration, resolution, limit), _timing)
        return [timing for timing in timings if timing is not None]

    async def protocol_task(
        self, task_id: str, *, owner: str | None = None
    ) -> ProtocolTaskRecord | None:
        conditions, params = _owned(["id = ?"], (task_id,), owner)
        sql = f"SELECT * FROM protocol_tasks{_where(conditions)}"
        found = await self._fetch(sql, params, self._protocol_record)
        return found[0] if found else None

    async def protocol_tasks(
        self,
        limit: int,
        *,
        after: tuple[float, str] | None = None,
        owner: str | None = None,
    ) -> list[ProtocolTaskRecord]:
        conditions, params = _owned([], (), owner)
        if after is not None:
            condition, values = self._page_after(*after)
            conditions, params = [*conditions, condition], (*params, *values)
        sql = (
            f"SELECT * FROM protocol_tasks{_where(conditions)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        return await self._fetch(sql, (*params, limit), self._protocol_record)


def _where(conditions: list[str]) -> str:
    """A WHERE clause that holds when every condition does (each parenthesised if it has OR)."""
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _owned(conditions: list[str], params: Params, owner: str | None) -> tuple[list[str], Params]:
    """The conditions narrowed to one owner's rows, unless `owner` is None (every owner)."""
    if owner is None:
        return conditions, params
    return [*conditions, "owner = ?"], (*params, owner)


def _stamp(value: object) -> str:
    """One of PiAPI's stamps as ISO 8601 text (SQLite stores text, PostgreSQL timestamptz)."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _timing(row: dict[str, Any]) -> TaskTiming | None:
    created = row["upstream_created_at"]
    return TaskTiming.from_stamps(
        _stamp(created) if created is not None else None,
        _stamp(row["upstream_started_at"]),
        _stamp(row["upstream_ended_at"]),
    )
