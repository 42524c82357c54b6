"""The writes both SQL ledgers make alike: each event's statement and values built here once.

Statements use `?` marks, as in sql_reads.py. A backend runs one statement as one transaction
and returns its row count (`_execute`), and says how it stores JSON (`_json`: text in SQLite,
jsonb in PostgreSQL). What truly differs stays with the backend: the attempt journal's insert
(its id comes back differently) and the inserts of new task rows, which lease them by the
backend's clock (`_insert_created`, `_insert_imported`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Final

from hailuo_mcp.ledger.records import LOCAL_OWNER, ProtocolTaskRecord, ProtocolTaskStatus
from hailuo_mcp.ledger.sql_reads import Params
from hailuo_mcp.ledger.values import (
    TERMINAL,
    created_values,
    imported_values,
    seen_values,
)
from hailuo_mcp.models import Task, VideoRequest
from hailuo_mcp.pricing import Estimate

Row = dict[str, Any]

_INSERT_PROTOCOL_TASK: Final = (
    "INSERT INTO protocol_tasks (id, task_id, owner, tool, protocol_version, status, "
    "status_message, ttl_ms, warnings, result, error, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SqlWrites(ABC):
    """The event writes of a SQL ledger, over the backend's `_execute` and its inserts."""

    @abstractmethod
    async def _execute(self, sql: str, params: Params) -> int:
        """Run the write `sql` (`?` marks) in a transaction of its own; its row count."""

    @abstractmethod
    def _json(self, value: object) -> object:
        """`value` as the backend's JSON parameter."""

    @abstractmethod
    async def _insert_created(self, row: Row, attempt_id: int) -> None:
        """Upsert `row`, leased to this replica, and close its attempt: one transaction."""

    @abstractmethod
    async def _insert_imported(self, row: Row) -> bool:
        """Insert `row`, leased to this replica, unless its task is recorded: True if it was."""

    async def _write(self, task_id: str, values: dict[str, Any]) -> None:
        if not values:
            return
        columns = ", ".join(f"{name} = ?" for name in values)
        await self._execute(
            f"UPDATE tasks SET {columns}, updated_at = ? WHERE task_id = ?",
            (*values.values(), time.time(), task_id),
        )

    def _json_or_none(self, value: object) -> object:
        return self._json(value) if value is not None else None

    async def record_attempt_failed(self, attempt_id: int, kind: str, message: str) -> None:
        await self._execute(
            "UPDATE create_attempts SET outcome = ?, message = ? WHERE attempt_id = ?",
            (kind, message, attempt_id),
        )

    async def record_created(
        self,
        task: Task,
        request: VideoRequest,
        price: Estimate,
        *,
        attempt_id: int,
        image_source: str | None = None,
        file_name: str | None = None,
        owner: str = LOCAL_OWNER,
    ) -> None:
        values = created_values(
            request, price, image_source=image_source, file_name=file_name, owner=owner
        ) | seen_values(task)
        await self._insert_created(_row(task, "created", values), attempt_id)

    async def record_imported(self, task: Task, *, owner: str = LOCAL_OWNER) -> bool:
        values = imported_values(task) | seen_values(task) | {"owner": owner}
        return await self._insert_imported(_row(task, "imported", values))

    async def record_seen(self, task: Task) -> None:
        await self._write(task.task_id, seen_values(task))

    async def record_saved(self, task_id: str, path: Path, *, replacing: str | None = None) -> bool:
        # Compare and set; COALESCE, because `IS ?` is SQLite's and PostgreSQL spells it apart.
        written = await self._execute(
            "UPDATE tasks SET video_path = ?, error_kind = NULL, error_message = NULL, "
            "updated_at = ? WHERE task_id = ? AND COALESCE(video_path, '') = ?",
            (str(path), time.time(), task_id, replacing or ""),
        )
        return written == 1

    async def record_save_failed(self, task_id: str, kind: str, message: str) -> None:
        await self._write(task_id, {"error_kind": kind, "error_message": message})

    async def record_lost(self, reason: str) -> int:
        now = time.time()
        return await self._execute(
            "UPDATE tasks SET status = 'cancelled', error_kind = 'lost', error_message = ?, "
            "finished_at = ?, updated_at = ?, lease_holder = NULL, lease_until = NULL "
            "WHERE status NOT IN ('completed', 'failed', 'cancelled')",
            (reason, now, now),
        )

    async def record_protocol_task(self, task: ProtocolTaskRecord) -> None:
        await self._execute(
            _INSERT_PROTOCOL_TASK,
            (
                task.id,
                task.task_id,
                task.owner,
                task.tool,
                task.protocol_version,
                task.status,
                task.status_message,
                task.ttl_ms,
                self._json(task.warnings),
                self._json_or_none(task.result),
                self._json_or_none(task.error),
                task.created_at,
                task.updated_at,
            ),
        )

    async def record_protocol_outcome(
        self,
        task_id: str,
        status: ProtocolTaskStatus,
        *,
        status_message: str | None = None,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        count = await self._execute(
            "UPDATE protocol_tasks SET status = ?, status_message = ?, result = ?, error = ?, "
            "updated_at = ? WHERE id = ? AND status NOT IN (?, ?, ?)",
            (
                status,
                status_message,
                self._json_or_none(result),
                self._json_or_none(error),
                time.time(),
                task_id,
                *TERMINAL,
            ),
        )
        return count == 1

    async def forget_protocol_tasks(self, expired_before: float) -> int:
        return await self._execute(
            "DELETE FROM protocol_tasks WHERE ttl_ms IS NOT NULL AND "
            "created_at + ttl_ms / 1000.0 < ?",
            (expired_before,),
        )


def _row(task: Task, origin: str, values: dict[str, Any]) -> Row:
    """Every column of a new row of `tasks` but its lease."""
    now = time.time()
    return {
        "task_id": task.task_id,
        "origin": origin,
        "created_at": now,
        "updated_at": now,
        **values,
    }
