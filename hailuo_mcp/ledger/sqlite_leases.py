"""Leases in a SQLite ledger: which process on this machine follows which task.

Several stdio servers on one machine share one file. A lease is free when it has no holder,
when its time ran out, or when its holder names this host and a process that no longer exists:
a server restarted after a crash resumes the crashed one's tasks at once instead of waiting
out the lease. Each change runs in one write transaction, so two processes never both take a
task. No RETURNING: it needs SQLite 3.35, newer than some Pythons ship.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from hailuo_mcp.ledger.records import TaskRecord
from hailuo_mcp.ledger.values import UNFINISHED_SQL, task_record

T = TypeVar("T")

# The SQL condition for "this row's lease may be taken" (parameter: now).
FREE_LEASE_SQL = "(lease_holder IS NULL OR lease_until < ? OR lease_gone(lease_holder))"


def lease_gone(holder: str | None) -> bool:
    """Whether `holder` names a process on this host that has ended (holders: host:pid:token)."""
    if holder is None:
        return False
    host, _, rest = holder.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def register_lease_functions(conn: sqlite3.Connection) -> None:
    """Make `lease_gone(holder)` callable from SQL on this connection."""
    conn.create_function("lease_gone", 1, lease_gone)


class SqliteLeases:
    """The lease calls of a SQLite ledger (mixed into `SqliteLedger`)."""

    _lease_s: float

    @property
    def holder(self) -> str:
        raise NotImplementedError

    async def _run(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    async def claim(self, task_id: str) -> bool:
        """A lease whose holder process has ended is free too (`lease_gone`)."""
        now = time.time()

        def write() -> bool:
            conn = self._db()
            with conn:
                cursor = conn.execute(
                    "UPDATE tasks SET lease_holder = ?, lease_until = ? WHERE task_id = ? AND "
                    f"(lease_holder = ? OR {FREE_LEASE_SQL})",
                    (self.holder, now + self._lease_s, task_id, self.holder, now),
                )
            return cursor.rowcount == 1

        return await self._run(write)

    async def renew(self, task_ids: list[str]) -> set[str]:
        """Extended, then read back in the same transaction (no RETURNING)."""
        if not task_ids:
            return set()
        now = time.time()
        marks = ", ".join("?" for _ in task_ids)

        def write() -> set[str]:
            conn = self._db()
            with conn:
                conn.execute(
                    f"UPDATE tasks SET lease_until = ? WHERE lease_holder = ? AND task_id IN "
                    f"({marks})",
                    (now + self._lease_s, self.holder, *task_ids),
                )
                rows = conn.execute(
                    f"SELECT task_id FROM tasks WHERE lease_holder = ? AND task_id IN ({marks})",
                    (self.holder, *task_ids),
                ).fetchall()
            return {row[0] for row in rows}

        return await self._run(write)

    async def release(self, task_id: str) -> None:

        def write() -> None:
            conn = self._db()
            with conn:
                conn.execute(
                    "UPDATE tasks SET lease_holder = NULL, lease_until = NULL "
                    "WHERE task_id = ? AND lease_holder = ?",
                    (task_id, self.holder),
                )

        await self._run(write)

    async def claim_orphans(self, max_age_s: float, limit: int) -> list[TaskRecord]:
        """Picked and leased under one write lock (BEGIN IMMEDIATE)."""
        now = time.time()

        def write() -> list[TaskRecord]:
            conn = self._db()
            with conn:
                # The write lock first, so the rows picked are still free when leased.
                conn.execute("BEGIN IMMEDIATE")
                picked = [
                    row[0]
                    for row in conn.execute(
                        f"SELECT task_id FROM tasks WHERE created_at >= ? AND {UNFINISHED_SQL} "
                        f"AND {FREE_LEASE_SQL} ORDER BY created_at LIMIT ?",
                        (now - max_age_s, now, limit),
                    )
                ]
                if not picked:
                    return []
                marks = ", ".join("?" for _ in picked)
                conn.execute(
                    "UPDATE tasks SET lease_holder = ?, lease_until = ? "
                    f"WHERE task_id IN ({marks})",
                    (self.holder, now + self._lease_s, *picked),
                )
                rows = conn.execute(
                    f"SELECT * FROM tasks WHERE task_id IN ({marks}) ORDER BY created_at", picked
                ).fetchall()
            return [task_record(dict(row)) for row in rows]

        return await self._run(write)
