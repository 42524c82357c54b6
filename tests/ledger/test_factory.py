"""open_ledger: PostgreSQL when the settings carry a database URL, else the SQLite file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import ConfigurationError
from hailuo_mcp.ledger import SqliteLedger, open_ledger
from hailuo_mcp.ledger.postgres import PostgresLedger
from tests.ledger.support import create

pytestmark = pytest.mark.anyio


async def test_without_a_database_url_the_ledger_is_the_sqlite_file(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"HAILUO_STATE_DIR": str(tmp_path / "state"), "HAILUO_LEASE_SECONDS": "5"}
    )
    async with open_ledger(settings, holder="me") as ledger:
        assert isinstance(ledger, SqliteLedger) and ledger.holder == "me"
        await create(ledger, "t1")
    assert settings.ledger_path.is_file()
    async with SqliteLedger(settings.ledger_path) as again:
        assert await again.get("t1") is not None
        assert await again.claim("t1") is False  # "me" holds it for 5 s


async def test_with_a_database_url_the_ledger_is_postgresql(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings.from_env(
        {"HAILUO_STATE_DIR": str(tmp_path / "state"), "HAILUO_DATABASE_URL": database_url}
    )
    async with open_ledger(settings) as ledger:
        assert isinstance(ledger, PostgresLedger)
        await create(ledger, "t1")
    async with PostgresLedger(database_url) as again:
        assert await again.get("t1") is not None
    assert not settings.ledger_path.exists()  # no SQLite file beside it


async def test_a_database_url_without_the_postgres_extra_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if psycopg were not installed: the import of the PostgreSQL ledger fails.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "hailuo_mcp.ledger.postgres")
    settings = Settings.from_env(
        {
            "HAILUO_STATE_DIR": str(tmp_path / "state"),
            "HAILUO_DATABASE_URL": "postgresql://u:secret@db.invalid/x",
        }
    )
    with pytest.raises(ConfigurationError, match=r"hailuo-mcp\[postgres\]") as caught:
        async with open_ledger(settings):
            pass
    assert "secret" not in caught.value.message
