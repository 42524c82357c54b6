"""The fault matrix: every way PiAPI, the network or the disk can fail, through the real tool.

One parametrized table, `CASES`, so docs/RELIABILITY.md can list it row by row. Each row runs
`generate_video` through the in-process MCP client against the emulator on loopback and checks
what a user would notice: the outcome (error kind and words), the task id kept in the answer and
in the ledger wherever a task exists, exactly the creates sent (never a retried create), the time
taken bounded, no partial or temporary file left, and, where the fault passes, that a later
`get_task` still saves the video.

Faults come from the emulator over real HTTP. The disk is the exception: "disk full" and "short
writes" replace `os.write` (the call `hailuo_mcp.piapi` streams the download with) for the
download's own temporary file only; "not writable" points HAILUO_OUTPUT_DIR below a regular
file, which fails for root too (these tests may run as root, where a chmod'ed folder is still
writable).

Set HAILUO_RELIABILITY_REPORT to a file path to append one JSON line per row (outcome, message,
seconds) for the tables in docs/RELIABILITY.md; the tests write nothing otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from hailuo_mcp.config import Settings
from hailuo_mcp.downloads import VideoDownloader
from hailuo_mcp.emulator import Emulator, Fault
from hailuo_mcp.emulator.video import sample_video
from hailuo_mcp.errors import StorageError
from hailuo_mcp.flow import VideoService
from hailuo_mcp.ledger import SqliteLedger
from hailuo_mcp.models import VideoRequest
from hailuo_mcp.piapi import PiAPIClient
from hailuo_mcp.server import build_server
from tests.support import error_of, make_settings

SPEED = 1000.0  # a 77 s task takes 77 ms
pytestmark = [pytest.mark.anyio, pytest.mark.emulator(clock=SPEED, seed=11)]
REQUEST_TIMEOUT = 1.0
DOWNLOAD_TIMEOUT = 2.0
FOREVER = 1_000_000


@dataclass(frozen=True)
class Case:
    """One row of the matrix."""

    id: str
    where: str  # create, get (while polling), task, download, disk
    fault: str  # in words, for the table
    outcome: str  # an error kind, "completed", or "waiting" (budget spent, done=false)
    words: str  # the user-visible message contains this
    faults: tuple[Fault, ...] = ()
    script: str | None = None  # "stick": the task never finishes upstream
    disk: str | None = None  # "enospc", "short", "not_writable"
    unreachable: bool = False  # nothing listens at PIAPI_BASE_URL
    wait: float | None = None  # wait_seconds of the call
    creates: int = 1  # create requests PiAPI receives
    task: bool = True  # a task exists: its id is in the answer and the ledger
    ledger: str | None = None  # the ledger row's status afterwards
    recovers: bool = False  # a later get_task saves the video
    bound: float = 5.0  # seconds the call may take, generously
    attempt: str | None = None  # outcome recorded for the create attempt
    attempted: bool = True  # a create attempt is journaled (False: refused before that)


CASES = [
    # The create: refused, lost, or never sent. Never retried, whatever happens.
    Case(
        "create-403-plan",
        "create",
        "HTTP 403 (plan level)",
        "authentication",
        "HTTP 403",
        faults=(Fault("create", "status", status=403),),
        task=False,
        attempt="authentication",
    ),
    Case(
        "create-429-bare",
        "create",
        "HTTP 429, no Retry-After",
        "rate_limited",
        "rate limiting requests (HTTP 429)",
        faults=(Fault("create", "status", status=429),),
        task=False,
        attempt="rate_limited",
    ),
    Case(
        "create-429-retry-after",
        "create",
        "HTTP 429, Retry-After: 30",
        "rate_limited",
        "Retry after 30 s",
        faults=(Fault("create", "status", status=429, retry_after=30),),
        task=False,
    ),
    Case(
        "create-503",
        "create",
        "HTTP 503 (`{description}` body)",
        "upstream_unavailable",
        "service temporarily unavailable",
        faults=(Fault("create", "status", status=503),),
        task=False,
    ),
    Case(
        "create-504-text",
        "create",
        "HTTP 504, text body",
        "upstream_unavailable",
        "HTTP 504",
        faults=(Fault("create", "status", status=504),),
        task=False,
    ),
    Case(
        "create-400",
        "create",
        "HTTP 400 with a reason",
        "invalid_input",
        "prompt flagged",
        faults=(
            Fault("create", "status", status=400, body={"code": 400, "message": "prompt flagged"}),
        ),
        task=False,
    ),
    Case(
        "create-200-error-envelope",
        "create",
        'HTTP 200, envelope `{"code": 500}`',
        "ambiguous_create",
        "NOT retried",
        faults=(Fault("create", "malformed", body={"code": 500, "message": "busy"}),),
        task=False,
        attempt="ambiguous_create",
    ),
    Case(
        "create-hang",
        "create",
        "no answer (hang; 1 s request timeout)",
        "ambiguous_create",
        "task history",
        faults=(Fault("create", "hang"),),
        task=False,
        attempt="ambiguous_create",
    ),
    Case(
        "create-refused",
        "create",
        "connection refused (nothing listening)",
        "upstream_unavailable",
        "no task was created",
        unreachable=True,
        creates=0,
        task=False,
        attempt="upstream_unavailable",
    ),
    # Polling: the task exists, so every answer names it and nothing is created twice.
    Case(
        "get-401",
        "get",
        "HTTP 401 mid-poll (key revoked)",
        "authentication",
        "PIAPI_API_KEY",
        faults=(Fault("get", "status", status=401),),
        ledger="pending",
        recovers=True,
    ),
    Case(
        "get-404-gone",
        "get",
        "HTTP 404, three polls in a row",
        "task_not_found",
        "no such task",
        faults=(Fault("get", "status", status=404, times=3),),
        ledger="pending",
        recovers=True,
    ),
    Case(
        "get-404-blip",
        "get",
        "HTTP 404, twice, right after create",
        "completed",
        "Video saved",
        faults=(Fault("get", "status", status=404, times=2),),
        ledger="completed",
    ),
    Case(
        "get-hang",
        "get",
        "one poll hangs (1 s request timeout)",
        "completed",
        "Video saved",
        faults=(Fault("get", "hang"),),
        ledger="completed",
    ),
    Case(
        "get-truncated",
        "get",
        "answer cut short, twice",
        "completed",
        "Video saved",
        faults=(Fault("get", "truncate", times=2),),
        ledger="completed",
    ),
    Case(
        "get-500-forever",
        "get",
        "HTTP 500 on every poll, wait 2 s",
        "waiting",
        "get_task",
        faults=(Fault("get", "status", status=500, times=FOREVER),),
        wait=2,
        ledger="pending",
    ),
    Case(
        "get-hang-forever",
        "get",
        "every poll hangs, wait 2.5 s",
        "waiting",
        "get_task",
        faults=(Fault("get", "hang", times=FOREVER),),
        wait=2.5,
        ledger="pending",
        bound=6,
    ),
    Case(
        "get-429-retry-after-3600",
        "get",
        "HTTP 429, Retry-After: 3600, wait 2 s",
        "waiting",
        "get_task",
        faults=(Fault("get", "status", status=429, retry_after=3600),),
        wait=2,
        ledger="pending",
        recovers=True,
    ),
    Case(
        "task-stuck",
        "task",
        "task stays processing forever, wait 2 s",
        "waiting",
        "still being generated",
        script="stick",
        wait=2,
        ledger="processing",
    ),
    # The finished video: expired, cut, stalled.
    Case(
        "download-404",
        "download",
        "output URL answers 404 (expired)",
        "download_failed",
        "HTTP 404 (expired?)",
        faults=(Fault("download", "not_found"),),
        ledger="completed",
        recovers=True,
    ),
    Case(
        "download-500",
        "download",
        "output URL answers 500",
        "download_failed",
        "HTTP 500",
        faults=(Fault("download", "status", status=500),),
        ledger="completed",
        recovers=True,
    ),
    Case(
        "download-truncated",
        "download",
        "connection closed halfway",
        "download_failed",
        "interrupted",
        faults=(Fault("download", "truncate"),),
        ledger="completed",
        recovers=True,
    ),
    Case(
        "download-hang",
        "download",
        "output URL sends nothing (1 s timeout)",
        "download_failed",
        "interrupted after 0 bytes",
        faults=(Fault("download", "hang"),),
        ledger="completed",
        recovers=True,
    ),
    # This machine's disk.
    Case(
        "disk-not-writable",
        "disk",
        "output folder cannot be created (parent is a file)",
        "configuration",
        "HAILUO_OUTPUT_DIR",
        disk="not_writable",
        # Checked before the create: nothing is paid for a video that could not be saved.
        creates=0,
        task=False,
        attempted=False,
    ),
    Case(
        "disk-full",
        "disk",
        "disk full after 64 KiB (ENOSPC)",
        "storage_failed",
        "No space left on device",
        disk="enospc",
        ledger="completed",
        recovers=True,
    ),
    Case(
        "disk-short-writes",
        "disk",
        "every write stores only half its bytes",
        "completed",
        "Video saved",
        disk="short",
        ledger="completed",
    ),
]


def text_of(result: CallToolResult) -> str:
    return " ".join(b.text for b in result.content if isinstance(b, TextContent))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _is_download_temp(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").endswith(".part")
    except OSError:
        return False


def broken_disk(mode: str) -> Callable[[int, Any], int]:
    """An `os.write` that fails (ENOSPC after 64 KiB) or writes half, for .part files only."""
    real_write = os.write
    written: dict[int, int] = {}

    def write(fd: int, data: Any) -> int:
        if not _is_download_temp(fd):
            return real_write(fd, data)
        if mode == "short":
            return real_write(fd, bytes(data)[: max(1, len(data) // 2)])
        if written.get(fd, 0) >= 64 * 1024:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        count = real_write(fd, data)
        written[fd] = written.get(fd, 0) + count
        return count

    return write


def ledger_of(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with sqlite3.connect(settings.ledger_path) as conn:
        conn.row_factory = sqlite3.Row
        tasks = [dict(r) for r in conn.execute("SELECT * FROM tasks")]
        tries = [dict(r) for r in conn.execute("SELECT * FROM create_attempts")]
    return tasks, tries


def files_in(folder: Path) -> list[str]:
    """Every file in the folder (hidden temp files too) but the poster frames beside videos."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".poster.jpg"))


def report(case: Case, outcome: str, message: str, seconds: float, creates: int) -> None:
    path = os.environ.get("HAILUO_RELIABILITY_REPORT")
    if path:
        line = {
            "id": case.id,
            "where": case.where,
            "fault": case.fault,
            "outcome": outcome,
            "message": message,
            "seconds": round(seconds, 2),
            "creates": creates,
            "task_kept": case.task,
            "recovers": case.recovers,
        }
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_each_fault_has_a_clear_outcome_keeps_the_task_and_never_creates_twice(
    case: Case, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "HAILUO_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
        "HAILUO_DOWNLOAD_TIMEOUT": str(DOWNLOAD_TIMEOUT),
        "HAILUO_WAIT_SECONDS": "10",
    }
    if case.unreachable:
        env["PIAPI_BASE_URL"] = closed_port_url()
    if case.disk == "not_writable":
        (tmp_path / "blocker").write_text("a file where a folder should be")
        env["HAILUO_OUTPUT_DIR"] = str(tmp_path / "blocker" / "videos")
    settings = make_settings(emulator, tmp_path, **env)
    for fault in case.faults:
        emulator.add_fault(fault)
    if case.script == "stick":
        emulator.stick_next_tasks(1)
    if case.disk in ("enospc", "short"):
        monkeypatch.setattr(os, "write", broken_disk(case.disk))
    arguments: dict[str, Any] = {"prompt": f"fault {case.id}"}
    if case.wait is not None:
        arguments["wait_seconds"] = case.wait

    async with Client(build_server(settings)) as client:
        started = time.monotonic()
        with anyio.fail_after(case.bound + 30):
            result = await client.call_tool("generate_video", arguments)
        took = time.monotonic() - started
        data = result.structured_content or {}
        message = text_of(result)

        # What the user sees.
        if case.outcome == "completed":
            assert not result.is_error, message
            assert data["done"] is True and Path(data["video_path"]).read_bytes() == sample_video()
        elif case.outcome == "waiting":
            assert not result.is_error, message
            assert data["done"] is False and data["status"] == case.ledger
        else:
            assert result.is_error, message
            assert error_of(result)["error_kind"] == case.outcome
        assert case.words in message
        assert took <= case.bound, f"{case.id} took {took:.1f} s"
        assert emulator.creates() == case.creates

        # The task kept, in the answer and in the ledger.
        tasks, tries = ledger_of(settings)
        if case.task:
            (task_id,) = emulator.task_ids()
            assert data["task_id"] == task_id and task_id in message
            (row,) = tasks
            assert (row["task_id"], row["status"]) == (task_id, case.ledger)
            if case.where in ("download", "disk") and case.outcome != "completed":
                # The video is still upstream: its URL is kept with the reason it is not here.
                assert row["video_url"] and row["error_kind"] == case.outcome
                if case.outcome == "storage_failed":
                    assert row["video_url"] in message  # where the paid video still is
        else:
            assert "task_id" not in data and tasks == []
            if case.attempted:
                (attempt,) = tries
                assert attempt["outcome"] == (case.attempt or case.outcome)
            else:
                assert tries == []

        # Nothing partial at the final path, no temporary file anywhere.
        names = files_in(settings.output_dir)
        if case.outcome == "completed":
            (name,) = names
            assert name.endswith(f"-{data['task_id'][:6]}.mp4")
        else:
            assert names == []

        if case.recovers:
            monkeypatch.undo()
            with anyio.fail_after(30):
                again = await client.call_tool(
                    "get_task", {"task_id": data["task_id"], "wait_seconds": 10}
                )
            assert not again.is_error, text_of(again)
            saved = Path((again.structured_content or {})["video_path"])
            assert saved.read_bytes() == sample_video()
            assert files_in(settings.output_dir) == [saved.name]
            assert emulator.creates() == case.creates
    report(case, data.get("error_kind") or case.outcome, message, took, emulator.creates())


# The ledger itself failing: another process holds its write lock past the busy timeout. The
# service is built from real parts with a short busy timeout (the server's is 10 s).


def hold_write_lock(settings: Settings) -> sqlite3.Connection:
    conn = sqlite3.connect(settings.ledger_path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_a_locked_ledger_before_the_create_is_a_storage_error_and_nothing_is_created(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path)
    async with (
        PiAPIClient(settings) as client,
        VideoDownloader(settings) as downloader,
        SqliteLedger(settings.ledger_path, busy_timeout_s=0.2) as ledger,
    ):
        service = VideoService(settings, client=client, ledger=ledger, downloader=downloader)
        lock = hold_write_lock(settings)
        try:
            with pytest.raises(StorageError) as caught, anyio.fail_after(10):
                await service.generate(VideoRequest(prompt="x"), wait_seconds=0)
        finally:
            lock.close()
    assert "ledger" in caught.value.message and caught.value.task_id is None
    assert emulator.creates() == 0


async def test_a_ledger_locked_between_create_and_record_still_hands_back_the_task_id(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path)
    emulator.add_fault(Fault("create", "hang", delay=0.5))  # answers after 0.5 s
    async with (
        PiAPIClient(settings) as client,
        VideoDownloader(settings) as downloader,
        SqliteLedger(settings.ledger_path, busy_timeout_s=0.2) as ledger,
    ):
        service = VideoService(settings, client=client, ledger=ledger, downloader=downloader)
        caught: list[StorageError] = []

        async def generate() -> None:
            try:
                await service.generate(VideoRequest(prompt="x"), wait_seconds=0)
            except StorageError as exc:
                caught.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(generate)
                while emulator.creates() == 0:  # the create is on its way: lock the ledger
                    await anyio.sleep(0.005)
                lock = hold_write_lock(settings)
        lock.close()
        (task_id,) = emulator.task_ids()
        (error,) = caught
        assert error.task_id == task_id
        # With the id from the answer, get_task adopts the task once the lock is gone.
        result = await service.lookup(task_id)
    assert result.task_id == task_id
    assert emulator.creates() == 1
