"""What only the SQLite ledger does: old files open, and a crashed process's leases are free."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from hailuo_mcp.errors import StorageError
from hailuo_mcp.ledger import LOCAL_OWNER, SqliteLedger
from hailuo_mcp.models import TaskStatus
from tests.ledger.support import create

pytestmark = pytest.mark.anyio

# A ledger file as the first releases wrote it: no owners, no leases, no image_source/file_name.
FIRST_RELEASE_SCHEMA = """
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY, status TEXT NOT NULL, origin TEXT NOT NULL, prompt TEXT,
    model TEXT, duration INTEGER, resolution INTEGER, image_url TEXT, expand_prompt INTEGER,
    estimate_usd REAL, estimate_points INTEGER, consumed_points INTEGER, video_url TEXT,
    video_path TEXT, error_kind TEXT, error_message TEXT, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, finished_at REAL, upstream_created_at TEXT,
    upstream_started_at TEXT, upstream_ended_at TEXT
);
CREATE INDEX tasks_by_created ON tasks (created_at DESC);
CREATE TABLE create_attempts (
    attempt_id INTEGER PRIMARY KEY AUTOINCREMENT, sent_at REAL NOT NULL,
    request_json TEXT NOT NULL, outcome TEXT NOT NULL, task_id TEXT, message TEXT
);
CREATE TABLE protocol_tasks (
    id TEXT PRIMARY KEY, task_id TEXT NOT NULL, tool TEXT NOT NULL,
    protocol_version TEXT NOT NULL, status TEXT NOT NULL, status_message TEXT, ttl_ms INTEGER,
    warnings TEXT, result TEXT, error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL
);
"""


def old_ledger(path: Path) -> None:
    now = time.time()
    with sqlite3.connect(path) as conn:
        conn.executescript(FIRST_RELEASE_SCHEMA)
        conn.execute(
            "INSERT INTO tasks (task_id, status, origin, prompt, created_at, updated_at) "
            "VALUES ('old-1', 'running', 'created', 'from before', ?, ?)",
            (now, now),
        )
        conn.execute(
            "INSERT INTO create_attempts (sent_at, request_json, outcome, task_id) "
            "VALUES (?, '{}', 'created', 'old-1')",
            (now,),
        )
        conn.execute(
            "INSERT INTO protocol_tasks (id, task_id, tool, protocol_version, status, warnings, "
            "created_at, updated_at) VALUES ('p-old', 'old-1', 'generate_video', '2025-11-25', "
            "'working', '[]', ?, ?)",
            (now, now),
        )
    conn.close()


async def test_a_ledger_file_from_before_owners_and_leases_opens_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.sqlite3"
    old_ledger(path)
    async with SqliteLedger(path, holder="new") as ledger:
        record = await ledger.get("old-1", owner=LOCAL_OWNER)
        protocol = await ledger.protocol_task("p-old", owner=LOCAL_OWNER)
        assert await ledger.get("old-1", owner="alice") is None
        orphans = await ledger.claim_orphans(3600, 10)  # never leased: free
        await create(ledger, "new-1", owner="alice")
        assert await ledger.record_attempt({"prompt": "x"}, owner="alice") == 3
    async with SqliteLedger(path, holder="again") as ledger:  # a second open changes nothing
        assert {r.task_id for r in await ledger.recent(10)} == {"old-1", "new-1"}
        assert await ledger.claim("old-1") is False  # "new" still holds it
    assert record is not None
    assert (record.owner, record.prompt, record.status) == (
        LOCAL_OWNER,
        "from before",
        TaskStatus.RUNNING,
    )
    assert record.file_name is None and record.image_source is None
    assert protocol is not None and protocol.owner == LOCAL_OWNER
    assert [r.task_id for r in orphans] == ["old-1"]
    with sqlite3.connect(path) as conn:
        owners = conn.execute("SELECT owner FROM create_attempts ORDER BY attempt_id").fetchall()
    conn.close()
    assert owners == [("local",), ("alice",), ("alice",)]


def test_the_default_holder_names_this_host_and_process() -> None:
    holder = SqliteLedger(Path("unused")).holder
    assert re.fullmatch(rf"{re.escape(socket.gethostname())}:{os.getpid()}:[0-9a-f]{{8}}", holder)
    assert SqliteLedger(Path("unused")).holder != holder  # unique per instance too


@pytest.fixture
def ended_pid() -> int:
    """The pid of a process on this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of another process on this host that is still running."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait(timeout=30)


async def test_a_lease_of_a_process_that_ended_is_free_at_once(
    tmp_path: Path, ended_pid: int
) -> None:
    path = tmp_path / "tasks.sqlite3"
    crashed = f"{socket.gethostname()}:{ended_pid}:0badc0de"
    async with SqliteLedger(path, holder=crashed, lease_s=600) as gone:
        await create(gone, "t1")
        await create(gone, "t2")
    async with SqliteLedger(path) as restarted:
        assert await restarted.claim("t1") is True
        assert [r.task_id for r in await restarted.claim_orphans(3600, 10)] == ["t2"]


async def test_a_lease_of_a_live_process_or_another_host_holds_until_it_expires(
    tmp_path: Path, live_pid: int, ended_pid: int
) -> None:
    path = tmp_path / "tasks.sqlite3"
    holders = {
        "live": f"{socket.gethostname()}:{live_pid}:12345678",
        "elsewhere": f"another-host:{ended_pid}:12345678",
        "unparsed": "replica-a",
    }
    for name, holder in holders.items():
        async with SqliteLedger(path, holder=holder, lease_s=600) as other:
            await create(other, name)
    async with SqliteLedger(path) as ledger:
        for name in holders:
            assert await ledger.claim(name) is False, name
        assert await ledger.claim_orphans(3600, 10) == []


class OtherWriter:
    """Another process that takes the ledger file's write lock and holds it until released."""

    HOLDER = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.read(); "
        "c.execute('COMMIT')"
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        self._process: subprocess.Popen[str] | None = None

    def lock(self) -> None:
        """Start the other process and return once it holds the lock (after the ledger made
        its file and rows: a lock taken before would block the ledger's own opening)."""
        self._process = subprocess.Popen(
            [sys.executable, "-c", self.HOLDER, str(self.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        assert self._process.stdout.readline().strip() == "locked"

    def commit(self) -> None:
        """The other process commits and lets go."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.close()

    def kill(self) -> None:
        """The other process dies holding the lock (SQLite frees it)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    def close(self) -> None:
        if self._process is not None:
            self.kill()
            self._process.wait(10)
            for stream in (self._process.stdin, self._process.stdout):
                if stream is not None:
                    stream.close()


@pytest.fixture
def other_writer(tmp_path: Path) -> Iterator[OtherWriter]:
    writer = OtherWriter(tmp_path / "tasks.sqlite3")
    try:
        yield writer
    finally:
        writer.close()


async def test_a_write_while_another_process_writes_waits_without_stalling_the_server(
    other_writer: OtherWriter,
) -> None:
    async with SqliteLedger(other_writer.path, busy_timeout_s=20.0) as ledger:
        await create(ledger, "t1")
        other_writer.lock()
        ticks = 0
        done = anyio.Event()

        async def write() -> None:
            await ledger.record_lost("the other process was writing")
            done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(write)
            with anyio.fail_after(10):
                while ticks < 20:  # the loop runs on while the write waits for the lock
                    await anyio.sleep(0.01)
                    ticks += 1
            assert not done.is_set()
            other_writer.commit()
            with anyio.fail_after(20):
                await done.wait()
        assert (await ledger.get("t1")).status == TaskStatus.CANCELLED  # type: ignore[union-attr]


async def test_a_write_locked_out_past_the_busy_timeout_is_a_storage_error(
    other_writer: OtherWriter,
) -> None:
    async with SqliteLedger(other_writer.path, busy_timeout_s=0.3) as ledger:
        await create(ledger, "t1")
        other_writer.lock()
        with pytest.raises(StorageError, match="could not be used"):
            await ledger.record_lost("locked out")
        other_writer.kill()
    async with SqliteLedger(other_writer.path) as reopened:
        assert (await reopened.get("t1")).status == TaskStatus.PENDING  # type: ignore[union-attr]
