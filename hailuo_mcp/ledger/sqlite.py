"""SqliteLedger: the task ledger in SQLite (WAL) under HAILUO_STATE_DIR.

Calls run on worker threads, one at a time (a lock), so the event loop never waits on a disk or
a lock held by another server process. Up to four calls are handed to threads at once: with one,
every call also waited for a trip through a busy event loop, and 1000 tasks queued for seconds
(docs/PERFORMANCE.md, many tasks). The files are private (0600): they hold prompts.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import anyio

from hailuo_mcp.errors import StorageError
from hailuo_mcp.ledger.protocol_tasks import PROTOCOL_TASKS_SCHEMA, ProtocolTaskRows
from hailuo_mcp.ledger.records import TaskRecord, TaskTiming
from hailuo_mcp.models import Task, TaskStatus, VideoRequest
from hailuo_mcp.pricing import Estimate

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

# Read into TaskRecord; upstream_created_at is read only for timings (completed_timings).
_READ = set(TaskRecord.model_fields)


class SqliteLedger(ProtocolTaskRows):
    """The SQLite ledger; open with `async with SqliteLedger(path)`."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(4)

    async def __aenter__(self) -> SqliteLedger:
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
            ) from exc
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        with conn:
            conn.executescript(_SCHEMA)
            conn.executescript(PROTOCOL_TASKS_SCHEMA)
            _add_missing_columns(conn)
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
                    ) from exc

        # Not abandoned on cancel: a write that started always completes, so a task id
        # returned by PiAPI is never lost between the create and its record.
        return await anyio.to_thread.run_sync(locked, limiter=self._limiter)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the task ledger is closed")
        return self._conn

    async def _write(self, task_id: str, values: dict[str, Any]) -> None:
        now = time.time()

        def write() -> None:
            conn = self._db()
            with conn:
                _update(conn, task_id, values, now)

        await self._run(write)

    async def _insert(
        self, task: Task, origin: str, values: dict[str, Any], attempt_id: int | None
    ) -> None:
        now = time.time()

        def write() -> None:
            conn = self._db()
            with conn:
                conn.execute(
                    "INSERT INTO tasks (task_id, status, origin, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(task_id) DO NOTHING",
                    (task.task_id, task.status.value, origin, now, now),
                )
                _update(conn, task.task_id, values, now)
                if attempt_id is not None:
                    conn.execute(
                        "UPDATE create_attempts SET outcome = 'created', task_id = ? "
                        "WHERE attempt_id = ?",
                        (task.task_id, attempt_id),
                    )

        await self._run(write)

    # Events

    async def record_attempt(self, request_input: dict[str, Any]) -> int:
        """A create is about to be sent (outcome 'sending')."""
        payload = json.dumps(request_input, sort_keys=True)

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

    async def record_attempt_failed(self, attempt_id: int, kind: str, message: str) -> None:
        """Why an attempt made no task we know of."""

        def write() -> None:
            conn = self._db()
            with conn:
                conn.execute(
                    "UPDATE create_attempts SET outcome = ?, message = ? WHERE attempt_id = ?",
                    (kind, message, attempt_id),
                )

        await self._run(write)

    async def record_created(
        self,
        task: Task,
        request: VideoRequest,
        price: Estimate,
        *,
        attempt_id: int,
        image_source: str | None = None,
        file_name: str | None = None,
    ) -> None:
        """A task PiAPI created for `request`, its attempt closed in the same transaction."""
        values = {
            "image_source": image_source,
            "file_name": file_name,
            "prompt": request.prompt,
            "model": request.model,
            "duration": request.duration,
            "resolution": request.resolution,
            "image_url": request.image_url,
            "expand_prompt": int(request.expand_prompt),
            "estimate_usd": price.usd,
            "estimate_points": price.points,
            **_seen(task),
        }
        await self._insert(task, "created", values, attempt_id)

    async def record_imported(self, task: Task) -> None:
        """A task created elsewhere: what its input says, and what it is now."""
        data = task.input
        values: dict[str, Any] = {}
        for name in ("prompt", "model", "image_url"):
            if isinstance(data.get(name), str) and data[name]:
                values[name] = data[name]
        for name in ("duration", "resolution"):
            if isinstance(data.get(name), int) and not isinstance(data.get(name), bool):
                values[name] = data[name]
        if isinstance(data.get("expand_prompt"), bool):
            values["expand_prompt"] = int(data["expand_prompt"])
        await self._insert(task, "imported", values | _seen(task), None)

    async def record_seen(self, task: Task) -> None:
        """A fresh snapshot of a known task."""
        await self._write(task.task_id, _seen(task))

    async def record_saved(self, task_id: str, path: Path) -> None:
        """The video is complete at `path`; any earlier save error is cleared."""
        await self._write(
            task_id, {"video_path": str(path), "error_kind": None, "error_message": None}
        )

    async def record_save_failed(self, task_id: str, kind: str, message: str) -> None:
        """The video could not be saved (it is still at its URL for a while)."""
        await self._write(task_id, {"error_kind": kind, "error_message": message})

    async def record_lost(self, reason: str) -> int:
        """End every unfinished task as cancelled with `reason`."""
        now = time.time()

        def write() -> int:
            conn = self._db()
            with conn:
                cursor = conn.execute(
                    "UPDATE tasks SET status = 'cancelled', error_kind = 'lost', "
                    "error_message = ?, finished_at = ?, updated_at = ? WHERE status NOT IN "
                    "('completed', 'failed', 'cancelled')",
                    (reason, now, now),
                )
            return cursor.rowcount

        return await self._run(write)

    # Reads

    async def get(self, task_id: str) -> TaskRecord | None:
        """The row of one task, or None."""

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

    async def created_since(self, epoch: float) -> list[TaskRecord]:
        """Every task recorded at or after `epoch`, oldest first."""

        def read() -> list[TaskRecord]:
            rows = (
                self._db()
                .execute("SELECT * FROM tasks WHERE created_at >= ? ORDER BY created_at", (epoch,))
                .fetchall()
            )
            return [_record(row) for row in rows]

        return await self._run(read)

    async def unfinished(self, max_age_s: float) -> list[TaskRecord]:
        """Tasks still worth following: not ended, or completed without a saved file."""
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

    async def completed_timings(
        self, model: str, duration: int, resolution: int, limit: int
    ) -> list[TaskTiming]:
        """Queue and generation seconds of the newest completed tasks of one kind."""

        def read() -> list[TaskTiming]:
            rows = (
                self._db()
                .execute(
                    "SELECT upstream_created_at, upstream_started_at, upstream_ended_at "
                    "FROM tasks WHERE status = 'completed' AND model = ? AND duration = ? AND "
                    "resolution = ? AND upstream_started_at IS NOT NULL AND upstream_ended_at "
                    "IS NOT NULL ORDER BY created_at DESC LIMIT ?",
                    (model, duration, resolution, limit),
                )
                .fetchall()
            )
            return [t for row in rows if (t := TaskTiming.from_stamps(*row)) is not None]

        return await self._run(read)


# Columns added after the first release: (name, SQL type). Old ledger files get them on open.
_ADDED_COLUMNS = (("image_source", "TEXT"), ("file_name", "TEXT"))


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    present = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
    for name, sql_type in _ADDED_COLUMNS:
        if name not in present:
            conn.execute(f"ALTER TABLE tasks ADD COLUMN {name} {sql_type}")


def _seen(task: Task) -> dict[str, Any]:
    """The columns one snapshot of a task sets."""
    values: dict[str, Any] = {"status": task.status.value}
    if task.video_url:
        values["video_url"] = task.video_url
    if task.consumed_points is not None:
        values["consumed_points"] = task.consumed_points
    if task.status == TaskStatus.FAILED:
        values["error_kind"] = "task_failed"
        values["error_message"] = task.error_message or "no reason given"
    if task.status.is_terminal:
        values["finished_at"] = time.time()
    if task.created_at is not None:
        values["upstream_created_at"] = task.created_at.isoformat()
    if task.started_at is not None:
        values["upstream_started_at"] = task.started_at.isoformat()
    if task.ended_at is not None:
        values["upstream_ended_at"] = task.ended_at.isoformat()
    return values


def _update(conn: sqlite3.Connection, task_id: str, values: dict[str, Any], now: float) -> None:
    if not values:
        return
    columns = ", ".join(f"{name} = ?" for name in values)
    conn.execute(
        f"UPDATE tasks SET {columns}, updated_at = ? WHERE task_id = ?",
        (*values.values(), now, task_id),
    )


def _make_private(path: Path) -> None:
    """Create `path` readable and writable by its owner only (0600), or narrow it to that."""
    if path.exists():
        path.chmod(0o600)
    elif not path.name.endswith(("-wal", "-shm")):  # SQLite gives those the main file's mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _record(row: sqlite3.Row) -> TaskRecord:
    data = {key: value for key, value in dict(row).items() if key in _READ}
    data["status"] = TaskStatus.parse(data["status"])
    if data.get("expand_prompt") is not None:
        data["expand_prompt"] = bool(data["expand_prompt"])
    return TaskRecord.model_validate(data)


def open_ledger_sync(path: Path) -> closing[sqlite3.Connection]:
    """A plain read connection, for tests and tools that inspect the ledger from outside."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return closing(conn)
