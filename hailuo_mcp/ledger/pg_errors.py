"""PostgreSQL failures as StorageError: what failed and where, never the URL's password."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from psycopg_pool import PoolTimeout

from hailuo_mcp.errors import StorageError


class StorageErrors:
    """Builds the ledger's StorageErrors for one database URL."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        self.where = _describe(url)
        self._secrets = _secrets_of(url)
        self._timeout_s = timeout_s

    def of(self, exc: BaseException, what: str = "could not be used") -> StorageError:
        """The StorageError for a driver or pool failure (raise it `from exc`)."""
        if isinstance(exc, PoolTimeout):
            detail = f"no connection within {self._timeout_s:g} s: is the database up?"
        else:
            # libpq's messages span lines; the password is not in them, but a driver message
            # quoting a connection string could be, so it is scrubbed all the same.
            detail = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return StorageError(f"The task ledger in PostgreSQL at {self.where} {what} ({detail}).")


def _describe(url: str) -> str:
    """The server and database of `url`, without user or password (for messages)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: say nothing of it rather than fail while failing
        port = ""
    database = parts.path.lstrip("/") or "(default database)"
    return f"{host}{port}/{database}"


def _secrets_of(url: str) -> tuple[str, ...]:
    """Passwords in `url` (its user part or ?password=), as written and decoded."""
    parts = urlsplit(url)
    found = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    return tuple({text for password in found if password for text in (password, unquote(password))})
