"""The SQLite ledger's tables, and how a file from an older release is brought up to date.

A file made by any earlier release opens: tables are created if missing and columns added
since are added in place (`ALTER TABLE ... ADD COLUMN`), each with the value old rows mean.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from hailuo_mcp.ledger.protocol_tasks import PROTOCOL_TASKS_SCHEMA

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    origin TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT 'local',
    prompt TEXT,
    model TEXT,
    duration INTEGER,
    resolution INTEGER,
    image_url TEXT,
    image_source TEXT,
    file_name TEXT,
    expand_prompt INTEGER,
    estimate_usd REAL,
    estimate_points INTEGER,
    consumed_points INTEGER,
    video_url TEXT,
    video_path TEXT,
    error_kind TEXT,
    error_message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    upstream_created_at TEXT,
    upstream_started_at TEXT,
    upstream_ended_at TEXT,
    lease_holder TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS tasks_by_created ON tasks (created_at DESC);
CREATE TABLE IF NOT EXISTS create_attempts (
    attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
    sent_at REAL NOT NULL,
    request_json TEXT NOT NULL,
    outcome TEXT NOT NULL,
    task_id TEXT,
    message TEXT,
    owner TEXT NOT NULL DEFAULT 'local'
);
"""

# Columns added after the first release, per table: (name, SQL type). Rows from before owners
# existed belong to the local user; rows from before leases are unleased.
_ADDED_COLUMNS: Final = {
    "tasks": (
        ("image_source", "TEXT"),
        ("file_name", "TEXT"),
        ("owner", "TEXT NOT NULL DEFAULT 'local'"),
        ("lease_holder", "TEXT"),
        ("lease_until", "REAL"),
    ),
    "create_attempts": (("owner", "TEXT NOT NULL DEFAULT 'local'"),),
    "protocol_tasks": (("owner", "TEXT NOT NULL DEFAULT 'local'"),),
}

# Indexes on added columns: only once the columns exist.
_LATE_INDEXES: Final = """
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, created_at DESC);
CREATE INDEX IF NOT EXISTS protocol_tasks_by_owner ON protocol_tasks (owner, created_at DESC);
"""


def create_or_upgrade(conn: sqlite3.Connection) -> None:
    """Create the tables, or add to an older file what it lacks (inside the caller's `with`)."""
    conn.executescript(_SCHEMA)
    conn.executescript(PROTOCOL_TASKS_SCHEMA)
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, sql_type in columns:
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")
    conn.executescript(_LATE_INDEXES)
