"""The `protocol_tasks` rows of the PostgreSQL ledger (mixed into `PostgresLedger`).

The same meaning as the SQLite table (protocol_tasks.py): an MCP task id linked to the PiAPI
task it follows, its owner, and its status; a terminal status is never changed again.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg.types.json import Jsonb

from hailuo_mcp.ledger.records import ProtocolTaskRecord, ProtocolTaskStatus
from hailuo_mcp.ledger.values import TERMINAL


class PgProtocolTaskRows:
    """Protocol-task writes over PostgresLedger's `_rows` and `_count` (reads: sql_reads.py)."""

    async def _rows(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def _count(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        raise NotImplementedError

    async def record_protocol_task(self, task: ProtocolTaskRecord) -> None:
        """A protocol task was created: durable before its CreateTaskResult is sent."""
        await self._count(
            "INSERT INTO protocol_tasks (id, task_id, owner, tool, protocol_version, status, "
            "status_message, ttl_ms, warnings, result, error, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                task.id,
                task.task_id,
                task.owner,
                task.tool,
                task.protocol_version,
                task.status,
                task.status_message,
                task.ttl_ms,
                Jsonb(task.warnings),
                _json(task.result),
                _json(task.error),
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
        """Move a protocol task that has not ended to `status`; False when it had ended."""
        count = await self._count(
            "UPDATE protocol_tasks SET status = %s, status_message = %s, result = %s, "
            "error = %s, updated_at = %s WHERE id = %s AND status <> ALL(%s)",
            (
                status,
                status_message,
                _json(result),
                _json(error),
                time.time(),
                task_id,
                list(TERMINAL),
            ),
        )
        return count == 1

    async def forget_protocol_tasks(self, expired_before: float) -> int:
        """Delete protocol tasks whose ttl ran out before `expired_before`; returns how many.

        Only the protocol rows go: the PiAPI tasks they followed stay in the ledger.
        """
        return await self._count(
            "DELETE FROM protocol_tasks WHERE ttl_ms IS NOT NULL AND "
            "created_at + ttl_ms / 1000.0 < %s",
            (expired_before,),
        )


def _json(value: dict[str, Any] | None) -> Jsonb | None:
    return Jsonb(value) if value is not None else None
