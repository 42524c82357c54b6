"""The `protocol_tasks` table: MCP protocol tasks, each following one PiAPI task.

A row links an unguessable MCP task id to the PiAPI task whose video it waits for. The PiAPI
task keeps its own row in `tasks` (followed, saved and resumed as before); this table adds what
the protocol needs on top: the MCP status, its ttl, and the stored tool result once it ended.
A terminal status (completed, failed, cancelled) is never changed again. Each row has the
`owner` that created it; a read given an owner sees only that owner's rows.
"""

from __future__ import annotations

import json
from typing import Any

from hailuo_mcp.ledger.records import ProtocolTaskRecord
from hailuo_mcp.ledger.sql_reads import Params

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


class ProtocolTaskRows:
    """How a SQLite ledger stores what the protocol-task reads and writes hold (mixed into
    `SqliteLedger`; the statements are sql_reads.py's and sql_writes.py's)."""

    def _json(self, value: object) -> object:
        """JSON as text."""
        return json.dumps(value)

    def _protocol_record(self, row: dict[str, Any]) -> ProtocolTaskRecord:
        """A row with its JSON columns still text."""
        data = dict(row)
        data["warnings"] = json.loads(data["warnings"]) if data.get("warnings") else []
        for name in ("result", "error"):
            data[name] = json.loads(data[name]) if data.get(name) else None
        return ProtocolTaskRecord.model_validate(data)

    def _page_after(self, created_at: float, task_id: str) -> tuple[str, Params]:
        """Spelt out: row values need SQLite 3.15, newer than some Pythons ship."""
        return "(created_at < ? OR (created_at = ? AND id < ?))", (created_at, created_at, task_id)
