"""The `protocol_tasks` table: MCP protocol tasks, each following one PiAPI task.

A row links an unguessable MCP task id to the PiAPI task whose video it waits for. The PiAPI
task keeps its own row in `tasks` (followed, saved and resumed as before); this table adds what
the protocol needs on top: the MCP status, its ttl, and the stored tool result once it ended.
A terminal status (completed, failed, cancelled) is never changed again. Each row has the
`owner` that created it; a read given an owner sees only that owner's rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from hailuo_mcp.ledger.records import ProtocolTaskRecord, ProtocolTaskStatus

T = TypeVar("T")

PROTOCOL_TASKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS protocol_tasks (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT 'local',
    tool TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    ttl_ms INTEGER,
    warnings TEXT,
    result TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS protocol_tasks_by_created ON protocol_tasks (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS protocol_tasks_by_task ON protocol_tasks (task_id);
"""

_TERMINAL = ("completed", "failed", "cancelled")


class ProtocolTaskRows:
    """The protocol-task writes of a SQLite ledger, and how it reads its rows back (mixed into
    `SqliteLedger`; the reads themselves are sql_reads.py's)."""

    async def _run(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError  # SqliteLedger's: one worker thread at a time, never abandoned

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _protocol_record(self, row: dict[str, Any]) -> ProtocolTaskRecord:
        """A row with its JSON columns still text, as SQLite stores them."""
        data = dict(row)
        data["warnings"] = json.loads(data["warnings"]) if data.get("warnings") else []
        for name in ("result", "error"):
            data[name] = json.loads(data[name]) if data.get(name) else None
        return ProtocolTaskRecord.model_validate(data)

    def _page_after(self, created_at: float, task_id: str) -> tuple[str, tuple[object, ...]]:
        """Spelt out: row values need SQLite 3.15, newer than some Pythons ship."""
        return "(created_at < ? OR (created_at = ? AND id < ?))", (created_at, created_at, task_id)

    async def record_protocol_task(self, task: ProtocolTaskRecord) -> None:
        """A protocol task was created: durable before its CreateTaskResult is sent."""

        def write() -> None:
            conn = self._db()
            with conn:
                conn.execute(
                    "INSERT INTO protocol_tasks (id, task_id, owner, tool, protocol_version, "
                    "status, status_message, ttl_ms, warnings, result, error, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        task.id,
                        task.task_id,
                        task.owner,
                        task.tool,
                        task.protocol_version,
                        task.status,
                        task.status_message,
                        task.ttl_ms,
                        json.dumps(task.warnings),
                        _dump(task.result),
                        _dump(task.error),
                        task.created_at,
                        task.updated_at,
                    ),
                )

        await self._run(write)

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
        now = time.time()

        def write() -> bool:
            conn = self._db()
            with conn:
                cursor = conn.execute(
                    "UPDATE protocol_tasks SET status = ?, status_message = ?, result = ?, "
                    "error = ?, updated_at = ? WHERE id = ? AND status NOT IN (?, ?, ?)",
                    (
                        status,
                        status_message,
                        _dump(result),
                        _dump(error),
                        now,
                        task_id,
                        *_TERMINAL,
                    ),
                )
            return cursor.rowcount == 1

        return await self._run(write)

    async def forget_protocol_tasks(self, expired_before: float) -> int:
        """Delete protocol tasks whose ttl ran out before `expired_before`; returns how many.

        Only the protocol rows go: the PiAPI tasks they followed stay in the ledger.
        """

        def write() -> int:
            conn = self._db()
            with conn:
                cursor = conn.execute(
                    "DELETE FROM protocol_tasks WHERE ttl_ms IS NOT NULL AND "
                    "created_at + ttl_ms / 1000.0 < ?",
                    (expired_before,),
                )
            return cursor.rowcount

        return await self._run(write)


def _dump(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value) if value is not None else None
