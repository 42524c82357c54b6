"""open_ledger: the ledger the settings name, PostgreSQL or SQLite, opened for the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import ConfigurationError
from hailuo_mcp.ledger.records import TaskLedger
from hailuo_mcp.ledger.sqlite import SqliteLedger


@asynccontextmanager
async def open_ledger(
    settings: Settings, *, holder: str | None = None
) -> AsyncIterator[TaskLedger]:
    """PostgreSQL when HAILUO_DATABASE_URL is set, else SQLite at `settings.ledger_path`.

    Leases last `settings.lease_seconds`; `holder` (default: host, pid, a random part) names
    this replica.

    Raises:
        ConfigurationError: a database URL is set but the `postgres` extra is not installed.
        StorageError: the ledger cannot be opened (unreachable, refused, newer schema).
    """
    if settings.database_url is None:
        async with SqliteLedger(
            settings.ledger_path, holder=holder, lease_s=settings.lease_seconds
        ) as ledger:
            yield ledger
        return
    try:
        # Imported here: psycopg is the optional `postgres` extra, and SQLite needs none of it.
        from hailuo_mcp.ledger.postgres import PostgresLedger
    except ImportError as exc:
        raise ConfigurationError(
            "HAILUO_DATABASE_URL is set but PostgreSQL support is not installed: install "
            "hailuo-mcp[postgres]."
        ) from exc
    async with PostgresLedger(
        settings.database_url.get_secret_value(), holder=holder, lease_s=settings.lease_seconds
    ) as ledger:
        yield ledger
