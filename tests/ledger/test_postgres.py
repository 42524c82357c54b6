"""What only the PostgreSQL ledger does: versioned migrations, a restart, errors without secrets.

Against a real PostgreSQL server (tests/postgres.py); each test has its own database, and the
restart test its own server.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import anyio
import psycopg
import pytest

from hailuo_mcp.errors import StorageError
from hailuo_mcp.ledger.pg_migrations import LATEST
from hailuo_mcp.ledger.postgres import PostgresLedger
from hailuo_mcp.models import Task, TaskStatus
from tests.ledger.support import create
from tests.postgres import PostgresServer, free_port, running_postgres

pytestmark = pytest.mark.anyio


def migrations(url: str) -> list[tuple[int, object]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, applied_at FROM schema_migrations ORDER BY 1")
        return [(int(version), applied) for version, applied in rows.fetchall()]


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def test_migrations_apply_once_and_a_second_open_is_a_no_op(database_url: str) -> None:
    async with PostgresLedger(database_url, holder="a") as ledger:
        await create(ledger, "t1")
    applied = migrations(database_url)
    async with PostgresLedger(database_url, holder="b") as ledger:
        record = await ledger.get("t1")
    assert [version for version, _ in applied] == list(range(1, LATEST + 1))
    assert migrations(database_url) == applied  # same rows, same applied_at
    assert record is not None


async def test_replicas_starting_together_on_an_empty_database_all_open(
    database_url: str,
) -> None:
    opened: list[str] = []

    async def start(name: str) -> None:
        async with PostgresLedger(database_url, holder=name) as ledger:
            await ledger.ping()
            opened.append(name)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for i in range(4):
                group.start_soon(start, f"r{i}")
    assert sorted(opened) == ["r0", "r1", "r2", "r3"]
    assert [version for version, _ in migrations(database_url)] == list(range(1, LATEST + 1))


async def test_a_database_newer_than_the_code_is_refused(database_url: str) -> None:
    async with PostgresLedger(database_url):
        pass
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (LATEST + 1,))
    with pytest.raises(StorageError) as caught:
        async with PostgresLedger(database_url):
            pass
    assert f"schema version {LATEST + 1}" in caught.value.message
    assert "newer than this hailuo-mcp knows" in caught.value.message


async def test_errors_name_the_server_but_never_the_password(database_url: str) -> None:
    secret = "s3cret-pw"
    closed_port = urlsplit(database_url)._replace(netloc=f"me:{secret}@127.0.0.1:{free_port()}")
    unreachable = urlunsplit(closed_port)
    no_such_db = with_password(database_url, secret).rsplit("/", 1)[0] + "/nope"
    messages = []
    for url in (unreachable, no_such_db, f"{no_such_db}?password={secret}"):
        with pytest.raises(StorageError) as caught:
            async with PostgresLedger(url, timeout_s=2):
                pass
        messages.append(caught.value.message)
        assert secret not in caught.value.message and secret not in str(caught.value)
        assert "PostgreSQL at 127.0.0.1:" in caught.value.message
    assert "/nope" in messages[1]


async def test_lease_times_are_the_database_clock(database_url: str) -> None:
    async with PostgresLedger(database_url, holder="a", lease_s=30) as ledger:
        await create(ledger, "t1")
        await ledger.claim("t1")
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT lease_holder, extract(epoch FROM lease_until - now()) FROM tasks"
        ).fetchone()
    assert row is not None and row[0] == "a"
    assert 25 < float(row[1]) <= 30


async def test_a_closed_ledger_is_a_storage_error(database_url: str) -> None:
    ledger = PostgresLedger(database_url)
    async with ledger:
        pass
    with pytest.raises(StorageError, match="closed"):
        await ledger.ping()


async def test_the_ledger_survives_a_database_restart() -> None:
    with running_postgres() as server:
        url = server.new_database()
        async with PostgresLedger(url, holder="a", timeout_s=2) as ledger:
            await create(ledger, "before")
            await server_stop(server)
            with anyio.fail_after(20), pytest.raises(StorageError) as caught:
                await ledger.get("before")
            assert "PostgreSQL at 127.0.0.1" in caught.value.message
            await server_start(server)
            # Readiness: the pool makes new connections once the server is back.
            with anyio.fail_after(30):
                while True:
                    try:
                        await ledger.ping()
                        break
                    except StorageError:
                        await anyio.sleep(0.2)
            before = await ledger.get("before")
            await create(ledger, "after")
            assert await ledger.claim("after") is True
            assert {r.task_id for r in await ledger.recent(10)} == {"before", "after"}
        assert before is not None and before.task_id == "before"


async def server_stop(server: PostgresServer) -> None:
    await anyio.to_thread.run_sync(server.stop)


async def server_start(server: PostgresServer) -> None:
    await anyio.to_thread.run_sync(server.start)


async def test_a_statement_stuck_on_a_lock_ends_as_a_storage_error(database_url: str) -> None:
    async with PostgresLedger(database_url, statement_timeout_s=0.5) as ledger:
        with psycopg.connect(database_url) as other:
            other.execute("LOCK TABLE tasks IN EXCLUSIVE MODE")  # held until `other` ends
            with anyio.fail_after(10), pytest.raises(StorageError) as caught:
                await ledger.record_imported(Task(task_id="t1", status=TaskStatus.RUNNING))
            other.rollback()
        assert "statement timeout" in caught.value.message
        assert await ledger.record_imported(Task(task_id="t1", status=TaskStatus.RUNNING))
