"""SqliteLedger: the task ledger in SQLite (WAL) under HAILUO_STATE_DIR.

Calls run one at a time (a lock). A call that can start at once runs on the event loop: it takes
well under a millisecond there, while on a worker thread every GIL hand-over inside it waited for
a busy loop, and 1000 tasks queued their ledger calls for seconds (docs/PERFORMANCE.md, many
tasks). A call that would wait (another call holds the lock, or another process writes the file)
runs on a worker thread instead, up to four handed over at once, so the loop never waits on a
lock. The files are private (0600): they hold prompts.

Several processes on one machine may share the file; leases (sqlite_leases.py) say which of
them follows a task. The tables and their upgrades are in sqlite_schema.py; the reads and
writes that are the same SQL as PostgreSQL's in sql_reads.py and sql_writes.py.
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
from hailuo_mcp.ledger.protocol_tasks import ProtocolTaskRows
from hailuo_mcp.ledger.records import LOCAL_OWNER
from hailuo_mcp.ledger.sql_reads import Params, R, SqlReads
from hailuo_mcp.ledger.sql_writes import Row, SqlWrites
from hailuo_mcp.ledger.sqlite_leases import SqliteLeases, register_lease_functions
from hailuo_mcp.ledger.sqlite_schema import create_or_upgrade
from hailuo_mcp.ledger.values import default_holder

T = TypeVar("T")


class _Busy(Exception):
    """A call on the event loop found the file locked by another writer."""


def _is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SqliteLedger(SqliteLeases, ProtocolTaskRows, SqlReads, SqlWrites):
    """The SQLite ledger; open with `async with SqliteLedger(path)`.

    Args:
        holder: this process's lease holder id (default: host, pid and a random part).
        lease_s: how long a lease lasts unless renewed.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 10.0,
        holder: str | None = None,
        lease_s: float = 20.0,
    ) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._holder = holder if holder is not None else default_holder()
        self._lease_s = lease_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(4)

    @property
    def holder(self) -> str:
        """This process's lease holder id."""
        return self._holder

    async def __aenter__(self) -> SqliteLedger:
        await self._in_thread(self._open)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._in_thread(self._close)

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
        register_lease_functions(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        with conn:
            create_or_upgrade(conn)
        # The WAL and shared-memory files hold prompts too.
        for suffix in ("-wal", "-shm"):
            _make_private(Path(f"{self._path}{suffix}"))
        # Calls on the event loop must not wait for another writer: they are refused at once,
        # and `_run` sends them to a thread that sets the busy timeout.
        conn.execute("PRAGMA busy_timeout = 0")
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run one call: on the loop if it can start at once, else on a worker thread.

        Every call is at most one transaction, so a call refused on the loop because another
        process was writing committed nothing, and runs again, whole, on the thread.
        """
        if self._lock.acquire(blocking=False):
            try:
                return self._checked(fn)
            except _Busy:
                pass  # another process holds the write lock: wait for it on a thread
            finally:
                self._lock.release()
        return await self._in_thread(fn)

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        def locked() -> T:
            with self._lock:
                conn = self._conn
                if conn is not None:
                    conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
                try:
                    return self._checked(fn, busy_is_error=True)
                finally:
                    if conn is not None and self._conn is conn:
                        conn.execute("PRAGMA busy_timeout = 0")

        # Not abandoned on cancel: a write that started always completes, so a task id
        # returned by PiAPI is never lost between the create and its record.
        return await anyio.to_thread.run_sync(locked, limiter=self._limiter)

    def _checked(self, fn: Callable[[], T], *, busy_is_error: bool = False) -> T:
        try:
            return fn()
        except sqlite3.Error as exc:
            if not busy_is_error and _is_busy(exc):
                raise _Busy from exc
            # Locked past the busy timeout, disk full, corrupt: a typed error, so the flow can
            # attach the task id and the tool can say what happened.
            raise StorageError(
                f"The task ledger at {self._path} could not be used ({exc})."
            ) from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the task ledger is closed")
        return self._conn

    async def ping(self) -> None:
        """Raise StorageError unless the file answers a query now."""
        await self._run(lambda: self._db().execute("SELECT 1").fetchone())

    async def _fetch(
        self, sql: str, params: Params, make: Callable[[dict[str, Any]], R]
    ) -> list[R]:
        def read() -> list[R]:
            return [make(dict(row)) for row in self._db().execute(sql, params)]

        return await self._run(read)

    async def _execute(self, sql: str, params: Params) -> int:
        def write() -> int:
            conn = self._db()
            with conn:
                return conn.execute(sql, params).rowcount

        return await self._run(write)

    # Events

    async def record_attempt(
        self, request_input: dict[str, Any], *, owner: str = LOCAL_OWNER
    ) -> int:
        """The attempt id is the row's `lastrowid` (no RETURNING: see sqlite_leases.py)."""
        payload = json.dumps(request_input, sort_keys=True)

        def write() -> int:
            conn = self._db()
            with conn:
                cursor = conn.execute(
                    "INSERT INTO create_attempts (sent_at, request_json, outcome, owner) "
                    "VALUES (?, ?, 'sending', ?)",
                    (time.time(), payload, owner),
                )
            return int(cursor.lastrowid or 0)

        return await self._run(write)

    def _leased(self, row: Row) -> Row:
        """`row` with this process's lease, timed from the row's own creation time."""
        return row | {
            "lease_holder": self._holder,
            "lease_until": row["created_at"] + self._lease_s,
        }

    async def _insert_created(self, row: Row, attempt_id: int) -> None:
        row = self._leased(row)
        columns = ", ".join(row)
        updates = ", ".join(f"{name} = excluded.{name}" for name in row if name != "created_at")

        def write() -> None:
            conn = self._db()
            with conn:
                conn.execute(
                    f"INSERT INTO tasks ({columns}) VALUES ({_marks(row)}) "
                    f"ON CONFLICT(task_id) DO UPDATE SET {updates}",
                    tuple(row.values()),
                )
                conn.execute(
                    "UPDATE create_attempts SET outcome = 'created', task_id = ? "
                    "WHERE attempt_id = ?",
                    (row["task_id"], attempt_id),
                )

        await self._run(write)

    async def _insert_imported(self, row: Row) -> bool:
        row = self._leased(row)
        count = await self._execute(
            f"INSERT INTO tasks ({', '.join(row)}) VALUES ({_marks(row)}) "
            "ON CONFLICT(task_id) DO NOTHING",
            tuple(row.values()),
        )
        return count == 1


def _marks(row: Row) -> str:
    return ", ".join("?" for _ in row)


def _make_private(path: Path) -> None:
    """Create `path` readable and writable by its owner only (0600), or narrow it to that."""
    if path.exists():
        path.chmod(0o600)
    elif not path.name.endswith(("-wal", "-shm")):  # SQLite gives those the main file's mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def open_ledger_sync(path: Path) -> closing[sqlite3.Connection]:
    """A plain read connection, for tests and tools that inspect the ledger from outside."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return closing(conn)
