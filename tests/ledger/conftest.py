"""The ledger tests' stores: a SQLite file or a fresh database on a real PostgreSQL server.

`store` is parametrized over both backends; `store.open(holder)` opens one more ledger instance
(one replica) on the same store, so a test can play several replicas at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from hailuo_mcp.ledger import SqliteLedger, TaskLedger
from hailuo_mcp.ledger.postgres import PostgresLedger
from tests.postgres import PostgresServer, serve_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; fails (never skips) without the binaries."""
    yield from serve_postgres()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session server's maintenance database URL (tests make their own databases)."""
    return postgres_server.url


@dataclass
class Store:
    """Where ledger instances of one test meet: a SQLite path or a PostgreSQL database URL."""

    kind: str
    path: Path | None = None
    url: str | None = None

    @contextmanager
    def writes_held(self) -> Iterator[Callable[[], None]]:
        """Block writes to `tasks` from another connection; yields the function that frees them."""
        if self.url is not None:
            pg = psycopg.connect(self.url)
            pg.execute("LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE")  # INSERT and UPDATE wait
            try:
                yield pg.rollback
            finally:
                pg.close()
            return
        assert self.path is not None
        lite = sqlite3.connect(self.path, isolation_level=None)
        lite.execute("BEGIN IMMEDIATE")  # every other writer waits (busy timeout)

        def free() -> None:
            lite.execute("ROLLBACK")

        try:
            yield free
        finally:
            lite.close()

    def open(self, holder: str | None = None, *, lease_s: float = 20.0) -> LedgerOpener:
        """One more ledger instance (replica) on this store."""
        if self.url is not None:
            return PostgresLedger(self.url, holder=holder, lease_s=lease_s, timeout_s=5.0)
        assert self.path is not None
        return SqliteLedger(self.path, holder=holder, lease_s=lease_s)


LedgerOpener = AbstractAsyncContextManager[TaskLedger]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, empty store of each backend."""
    if request.param == "sqlite":
        return Store("sqlite", path=tmp_path / "tasks.sqlite3")
    # Asked for only here, so a SQLite-only run starts no server.
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return Store("postgres", url=server.new_database())


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.new_database()
