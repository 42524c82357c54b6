"""PostgresLedger: the task ledger in PostgreSQL, shared by replicas (HAILUO_DATABASE_URL).

The same protocol and meaning as SqliteLedger (tests/ledger/test_parity.py runs one suite over
both). A pool of connections (psycopg_pool) serves the calls; each call is one transaction.
The pool checks a connection before handing it out, so after a database restart the dead ones
are dropped and new ones made: a call during the outage raises StorageError within `timeout_s`,
later calls work again. Leases use the database's clock, never a replica's. Every database
failure is a StorageError whose message names the server without its password (pg_errors.py).
The schema is versioned (pg_migrations.py); the reads and writes that are the same SQL as
SQLite's are in sql_reads.py and sql_writes.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from hailuo_mcp.errors import StorageError
from hailuo_mcp.ledger.pg_errors import StorageErrors
from hailuo_mcp.ledger.pg_migrations import migrate
from hailuo_mcp.ledger.records import LOCAL_OWNER, TaskRecord
from hailuo_mcp.ledger.sql_reads import Params, R, SqlReads
from hailuo_mcp.ledger.sql_writes import Row, SqlWrites
from hailuo_mcp.ledger.values import UNFINISHED_SQL, default_holder, task_record

T = TypeVar("T")
Rows = list[dict[str, Any]]

_UNTIL = "clock_timestamp() + make_interval(secs => %s)"
_FREE = "(lease_holder IS NULL OR lease_until < clock_timestamp())"


class PostgresLedger(SqlReads, SqlWrites):
    """The PostgreSQL ledger; open with `async with PostgresLedger(url)`.

    Args:
        url: a postgresql:// URL (it may carry a password; it never appears in an error).
        holder: this replica's lease holder id (default: host, pid and a random part).
        lease_s: how long a lease lasts unless renewed.
        timeout_s: how long a call waits for a connection before it is a StorageError.
        statement_timeout_s: the longest one statement may run (a lock wait, say); the URL's
            own `options` take its place when given.
        pool_size: the most connections this replica opens.
    """

    def __init__(
        self,
        url: str,
        *,
        holder: str | None = None,
        lease_s: float = 20.0,
        timeout_s: float = 10.0,
        statement_timeout_s: float = 30.0,
        pool_size: int = 8,
    ) -> None:
        self._holder = holder if holder is not None else default_holder()
        self._lease_s = lease_s
        self._timeout_s = timeout_s
        self._conninfo = _bounded(url, timeout_s, statement_timeout_s)
        self._errors = StorageErrors(url, timeout_s=timeout_s)
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None

    @property
    def holder(self) -> str:
        """This replica's lease holder id."""
        return self._holder

    async def __aenter__(self) -> PostgresLedger:
        try:
            # One plain connection first: its failure says why (refused, no such database,
            # authentication), where the pool would only say it timed out.
            conn = await psycopg.AsyncConnection.connect(self._conninfo)
            async with conn:
                await migrate(conn)
        except psycopg.Error as exc:
            raise self._errors.of(exc, "could not be opened") from exc
        pool = AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            timeout=self._timeout_s,
            # A dead connection (the server restarted) is dropped at checkout, not handed out.
            check=AsyncConnectionPool.check_connection,
            name="hailuo-ledger",
        )
        try:
            await pool.open(wait=True, timeout=self._timeout_s)
        except psycopg.Error as exc:
            await pool.close()
            raise self._errors.of(exc, "could not be opened") from exc
        self._pool = pool
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _run(self, fn: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run `fn` in one transaction on a pooled connection; failures become StorageError."""
        if self._pool is None:
            raise StorageError("the task ledger is closed")
        # Shielded: a write that started always completes (invariant 1, as in SqliteLedger);
        # the pool's timeout bounds the wait.
        with anyio.CancelScope(shield=True):
            try:
                async with self._pool.connection() as conn:
                    result = await fn(conn)
            except psycopg.Error as exc:
                raise self._errors.of(exc) from exc
        return result

    async def _rows(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Rows:
        async def run(conn: AsyncConnection[Any]) -> Rows:
            async with conn.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(sql, params)
                return await cursor.fetchall() if cursor.description else []

        return await self._run(run)

    async def _fetch(
        self, sql: str, params: Params, make: Callable[[dict[str, Any]], R]
    ) -> list[R]:
        rows = await self._rows(_pg_marks(sql), params)
        return [make(row) for row in rows]

    async def _count(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        async def run(conn: AsyncConnection[Any]) -> int:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

        return await self._run(run)

    async def ping(self) -> None:
        """Raise StorageError unless the database answers a query now."""
        await self._rows("SELECT 1")

    async def _execute(self, sql: str, params: Params) -> int:
        return await self._count(_pg_marks(sql), params)

    def _json(self, value: object) -> object:
        """As jsonb (psycopg's `Jsonb` wrapper)."""
        return Jsonb(value)

    # Events

    async def record_attempt(
        self, request_input: dict[str, Any], *, owner: str = LOCAL_OWNER
    ) -> int:
        """The attempt id comes back by RETURNING."""
        rows = await self._rows(
            "INSERT INTO create_attempts (sent_at, request_json, outcome, owner) "
            "VALUES (%s, %s, 'sending', %s) RETURNING attempt_id",
            (time.time(), Jsonb(request_input), owner),
        )
        return int(rows[0]["attempt_id"])

    async def _insert_created(self, row: Row, attempt_id: int) -> None:
        updates = ", ".join(f"{name} = excluded.{name}" for name in row if name != "created_at")

        async def run(conn: AsyncConnection[Any]) -> None:
            await conn.execute(
                f"INSERT INTO tasks ({', '.join(row)}, lease_holder, lease_until) "
                f"VALUES ({_marks(row)}, %s, {_UNTIL}) ON CONFLICT (task_id) DO UPDATE SET "
                f"{updates}, lease_holder = excluded.lease_holder, "
                "lease_until = excluded.lease_until",
                (*row.values(), self._holder, self._lease_s),
            )
            await conn.execute(
                "UPDATE create_attempts SET outcome = 'created', task_id = %s "
                "WHERE attempt_id = %s",
                (row["task_id"], attempt_id),
            )

        await self._run(run)

    async def _insert_imported(self, row: Row) -> bool:
        count = await self._count(
            f"INSERT INTO tasks ({', '.join(row)}, lease_holder, lease_until) "
            f"VALUES ({_marks(row)}, %s, {_UNTIL}) ON CONFLICT (task_id) DO NOTHING",
            (*row.values(), self._holder, self._lease_s),
        )
        return count == 1

    # Leases (the database's clock)

    async def claim(self, task_id: str) -> bool:
        """Lease times are the database's clock."""
        count = await self._count(
            f"UPDATE tasks SET lease_holder = %s, lease_until = {_UNTIL} "
            f"WHERE task_id = %s AND (lease_holder = %s OR {_FREE})",
            (self._holder, self._lease_s, task_id, self._holder),
        )
        return count == 1

    async def renew(self, task_ids: list[str]) -> set[str]:
        """One statement: the ids still held come back by RETURNING."""
        if not task_ids:
            return set()
        rows = await self._rows(
            f"UPDATE tasks SET lease_until = {_UNTIL} WHERE lease_holder = %s "
            "AND task_id = ANY(%s) RETURNING task_id",
            (self._lease_s, self._holder, list(task_ids)),
        )
        return {row["task_id"] for row in rows}

    async def release(self, task_id: str) -> None:
        await self._count(
            "UPDATE tasks SET lease_holder = NULL, lease_until = NULL "
            "WHERE task_id = %s AND lease_holder = %s",
            (task_id, self._holder),
        )

    async def claim_orphans(self, max_age_s: float, limit: int) -> list[TaskRecord]:
        """One statement: rows another replica is claiming at the same moment are skipped
        (SKIP LOCKED), and a row it has just claimed fails the lease test on recheck."""
        rows = await self._rows(
            "WITH orphans AS (SELECT task_id FROM tasks WHERE created_at >= %s AND "
            f"{UNFINISHED_SQL} AND {_FREE} ORDER BY created_at LIMIT %s "
            "FOR UPDATE SKIP LOCKED) "
            f"UPDATE tasks SET lease_holder = %s, lease_until = {_UNTIL} FROM orphans "
            "WHERE tasks.task_id = orphans.task_id RETURNING tasks.*",
            (time.time() - max_age_s, limit, self._holder, self._lease_s),
        )
        return sorted((task_record(row) for row in rows), key=lambda record: record.created_at)


def _bounded(url: str, timeout_s: float, statement_timeout_s: float) -> str:
    """The URL as a libpq conninfo with settings that bound every wait (invariant 4), where
    the URL does not set its own.

    Keepalives notice a server that vanished without closing the connection (a network cut);
    the statement timeout ends a statement stuck on a lock. A wait inside a call is shielded
    from cancellation, so these are what bound it.
    """
    defaults: dict[str, str | int] = {
        "connect_timeout": max(1, math.ceil(timeout_s)),  # libpq takes whole seconds
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "options": f"-c statement_timeout={int(statement_timeout_s * 1000)}",
    }
    given = conninfo_to_dict(url)
    return make_conninfo(url, **{name: v for name, v in defaults.items() if name not in given})


def _marks(row: dict[str, Any]) -> str:
    return ", ".join("%s" for _ in row)


def _pg_marks(sql: str) -> str:
    """A statement of sql_reads.py or sql_writes.py with psycopg's marks (%s; a literal %
    doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")
