"""The task ledger: SQLite (WAL) in HAILUO_STATE_DIR, the record of every task we know of.

A task id returned by PiAPI is written here before anything else happens with it. Calls run on
worker threads, one at a time (a lock), so the event loop never waits on a disk or a lock held
by another server process. Up to four calls are handed to threads at once: with one, every call
also waited for a trip through a busy event loop, and 1000 tasks queued for seconds
(docs/PERFORMANCE.md, many tasks).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel

from hailuo_mcp.errors import StorageError
from hailuo_mcp.models import TaskStatus

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    origin TEXT NOT NULL,
    prompt TEXT,
    model TEXT,
    duration INTEGER,
    resolution INTEGER,
    image_url TEXT,
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
    upstream_ended_at TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_created ON tasks (created_at DESC);
CREATE TABLE IF NOT EXISTS create_attempts (
    attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
    sent_at REAL NOT NULL,
    request_json TEXT NOT NULL,
    outcome TEXT NOT NULL,
    task_id TEXT,
    message TEXT
);
"""

_UPDATABLE = {
    "status",
    "video_url",
    "video_path",
    "error_kind",
    "error_message",
    "consumed_points",
    "finished_at",
    "upstream_created_at",
    "upstream_started_at",
    "upstream_ended_at",
    "prompt",
    "model",
    "duration",
    "resolution",
    "image_url",
    "expand_prompt",
    "estimate_usd",
    "estimate_points",
}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class TaskRecord(BaseModel):
    """One row of the ledger, as tools show it."""

    task_id: str
    status: TaskStatus
    origin: str
    prompt: str | None = None
    model: str | None = None
    duration: int | None = None
    resolution: int | None = None
    image_url: str | None = None
    expand_prompt: bool | None = None
    estimate_usd: float | None = None
    estimate_points: int | None = None
    consumed_points: int | None = None
    video_url: str | None = None
    video_path: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None

    @property
    def created_iso(self) -> str:
        """Creation time as an ISO 8601 UTC string."""
        return _iso(self.created_at) or ""


class Ledger:
    """SQLite-backed record of tasks; open with `async with Ledger(path)`."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(4)

    async def __aenter__(self) -> Ledger:
        await self._run(self._open)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._run(self._close)

    def _open(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _make_private(self._path)
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout_s, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"Cannot open the task ledger at {self._path} ({exc}). Set HAILUO_STATE_DIR "
                "to a writable folder."
            ) from None
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        with conn:
            conn.executescript(_SCHEMA)
        # The WAL and shared-memory files hold prompts too.
        for suffix in ("-wal", "-shm"):
            _make_private(Path(f"{self._path}{suffix}"))
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[[], T]) -> T:
        def locked() -> T:
            with self._lock:
                try:
                    return fn()
                except sqlite3.Error as exc:
                    # Locked past the busy timeout, disk full, corrupt: a typed error, so the
                    # flow can attach the task id and the tool can say what happened.
                    raise StorageError(
                        f"The task ledger at {self._path} could not be used ({exc})."
                    ) from None

        # Not abandoned on cancel: a write that started always completes (invariant 1).
        return await anyio.to_thread.run_sync(locked, limiter=self._limiter)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the task ledger is closed")
        return self._conn

    async def record_task(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        origin: str,
        fields: dict[str, Any],
        attempt_id: int | None = None,
    ) -> None:
        """Insert a task, or update it if another path recorded it first.

        With `attempt_id`, the create attempt that produced the task is closed in the same
        transaction: the ledger never shows a created task beside an attempt still 'sending'.
        """
        now = time.time()
        values = {k: v for k, v in fields.items() if k in _UPDATABLE}

        def write() -> None:
            conn = self._db()
            with conn:
                conn.execute(
                    "INSERT INTO tasks (task_id, status, origin, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(task_id) DO NOTHING",
                    (task_id, status.value, origin, now, now),
                )
                self._update_in(conn, task_id, {"status": status.value, **values}, now)
                if attempt_id is not None:
                    conn.execute(
                        "UPDATE create_attempts SET outcome = 'created', task_id = ? "
                        "WHERE attempt_id = ?",
                        (task_id, attempt_id),
                    )

        await self._run(write)

    @staticmethod
    def _update_in(
        conn: sqlite3.Connection, task_id: str, values: dict[str, Any], now: float
    ) -> None:
        if not values:
            return
        columns = ", ".join(f"{name} = ?" for name in values)
        conn.execute(
            f"UPDATE tasks SET {columns}, updated_at = ? WHERE task_id = ?",
            (*values.values(), now, task_id),
        )

    async def update(self, task_id: str, **fields: Any) -> None:
        """Update known columns of one task."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not ledger columns: {sorted(unknown)}")
        values = {k: (v.value if isinstance(v, TaskStatus) else v) for k, v in fields.items()}
        now = time.time()

        def write() -> None:
            conn = self._db()
            with conn:
                self._update_in(conn, task_id, values, now)

        await self._run(write)

    async def get(self, task_id: str) -> TaskRecord | None:
        """The ledger row for a task, or None."""

        def read() -> TaskRecord | None:
            row = self._db().execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            return _record(row) if row is not None else None

        return await self._run(read)

    async def recent(self, limit: int, status: TaskStatus | None = None) -> list[TaskRecord]:
        """Newest tasks first, optionally of one status."""

        def read() -> list[TaskRecord]:
            conn = self._db()
            if status is None:
                rows = conn.execute(
                    "SELECT * FROM tasks ORDER BY created_at DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM tasks WHERE status = ? ORDER BY created_at DESC LIMIT ?",
                    (status.value, limit),
                ).fetchall()
            return [_record(row) for row in rows]

        return await self._run(read)

    async def unfinished(self, max_age_s: float) -> list[TaskRecord]:
        """Tasks still worth tracking: not terminal, or completed without a saved file."""
        since = time.time() - max_age_s

        def read() -> list[TaskRecord]:
            rows = (
                self._db()
                .execute(
                    "SELECT * FROM tasks WHERE created_at >= ? AND (status NOT IN "
                    "('completed', 'failed', 'cancelled') OR (status = 'completed' AND "
                    "video_path IS NULL AND video_url IS NOT NULL)) ORDER BY created_at",
                    (since,),
                )
                .fetchall()
            )
            return [_record(row) for row in rows]

        return await self._run(read)

    async def abandon_unfinished(self, reason: str) -> int:
        """End every unfinished task as cancelled with `reason` (the demo emulator forgot them)."""
        now = time.time()

        def write() -> int:
            conn = self._db()
            with conn:
                cursor = conn.execute(
                    "UPDATE tasks SET status = 'cancelled', error_kind = 'emulator_restarted', "
                    "error_message = ?, finished_at = ?, updated_at = ? WHERE status NOT IN "
                    "('completed', 'failed', 'cancelled')",
                    (reason, now, now),
                )
            return cursor.rowcount

        return await self._run(write)

    async def start_attempt(self, request: dict[str, Any]) -> int:
        """Record that a create is about to be sent (outcome 'sending')."""
        payload = json.dumps(request, sort_keys=True)

        def write() -> int:
            conn = self._db()
            with conn:
                cursor = conn.execute(
                    "INSERT INTO create_attempts (sent_at, request_json, outcome) "
                    "VALUES (?, ?, 'sending')",
                    (time.time(), payload),
                )
            return int(cursor.lastrowid or 0)

        return await self._run(write)

    async def finish_attempt(self, attempt_id: int, outcome: str, *, message: str = "") -> None:
        """Record why a create attempt made no task we know of (the error kind and message).

        A successful attempt is closed by `record_task`, in the transaction that records the task.
        """

        def write() -> None:
            conn = self._db()
            with conn:
                conn.execute(
                    "UPDATE create_attempts SET outcome = ?, message = ? WHERE attempt_id = ?",
                    (outcome, message, attempt_id),
                )

        await self._run(write)


def _make_private(path: Path) -> None:
    """Create `path` readable and writable by its owner only (0600), or narrow it to that."""
    if path.exists():
        path.chmod(0o600)
    elif path.name.endswith(("-wal", "-shm")):
        return  # SQLite creates these with the main file's mode
    else:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _record(row: sqlite3.Row) -> TaskRecord:
    data = dict(row)
    data["status"] = TaskStatus.parse(data["status"])
    for name in ("upstream_created_at", "upstream_started_at", "upstream_ended_at"):
        data.pop(name, None)
    if data.get("expand_prompt") is not None:
        data["expand_prompt"] = bool(data["expand_prompt"])
    return TaskRecord.model_validate(data)


def open_ledger_sync(path: Path) -> closing[sqlite3.Connection]:
    """A plain read connection, for tests and tools that inspect the ledger from outside."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return closing(conn)
