"""A real PostgreSQL server for the tests: Debian's binaries, a throwaway cluster on loopback.

`running_postgres()` runs initdb into a temporary folder (as the `postgres` user when the tests
run as root, since initdb refuses root), starts the server on 127.0.0.1 at a free port with its
unix socket in that folder and trust authentication, and removes everything afterwards.
`PostgresServer.new_database()` makes an empty database per test, so tests never share rows;
`stop()` and `start()` let a test take the server away and bring it back. .ci/postgres.sh
installs the binaries; without them the tests fail (they never skip).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

BIN_GLOB = "/usr/lib/postgresql/*/bin"


class PostgresMissing(RuntimeError):
    """PostgreSQL's server binaries are not installed here."""


def find_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder (initdb, pg_ctl, postgres)."""
    found = [
        Path(folder)
        for folder in glob.glob(BIN_GLOB)
        if all((Path(folder) / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))
    ]
    if not found:
        raise PostgresMissing(
            f"PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not under {BIN_GLOB}. "
            "Run `bash .ci/postgres.sh` (it installs Debian's postgresql package)."
        )
    return max(found, key=lambda folder: int(folder.parent.name.split(".")[0]))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One throwaway PostgreSQL cluster; `url` is its `postgres` database."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data_dir = root / "data"
        self.socket_dir = root / "socket"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        """The maintenance database's URL (make test databases through `new_database`)."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """The URL of database `name` on this server, over TCP loopback."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _command(self, *args: str) -> list[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        return ["runuser", "-u", "postgres", "--", *command] if self._as_postgres else command

    def _call(self, *args: str) -> None:
        done = subprocess.run(self._command(*args), capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")

    def init(self) -> None:
        """initdb: trust on loopback and the socket, no fsync (test data is thrown away)."""
        self.socket_dir.mkdir()
        if self._as_postgres:
            for path in (self.root, self.socket_dir):
                shutil.chown(path, "postgres", "postgres")
        self._call("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-N")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = self.root / "server.log"
        self._call("pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop the server now (fast: open connections are cut)."""
        self._call("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """Stop and start again, on the same port and data."""
        self.stop()
        self.start()

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)


def _temp_base() -> str | None:
    """Where the cluster's folder goes: the usual temp folder, unless the `postgres` user
    could not reach it (under root, a TMPDIR inside /root), then /tmp."""
    base = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() != 0:
        return None
    reachable = all(folder.stat().st_mode & 0o001 for folder in (base, *base.parents))
    return None if reachable else "/tmp"


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster, started; stopped and deleted afterwards."""
    bin_dir = find_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="hailuo-pg-", dir=_temp_base()))
    server = PostgresServer(bin_dir, root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        except RuntimeError:
            pass  # never started, or already stopped by the test
        shutil.rmtree(root, ignore_errors=True)


def serve_postgres() -> Iterator[PostgresServer]:
    """The body of a session fixture (`yield from serve_postgres()`).

    Fails the tests that need it, never skips them, when the binaries are missing.
    """
    try:
        with running_postgres() as server:
            yield server
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)
