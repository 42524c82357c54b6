"""A video is kept once, even when two replicas both download it.

Replica A's lease runs out while its download is still going (the ledger was unreachable, say);
replica B takes the task over, downloads and records first. A's copy must then go, so the output
folder holds one file and both replicas answer with the same path. Two ledger instances on one
SQLite file are the two replicas; the downloader is the network seam, gated so the test decides
who finishes first.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import StorageError
from hailuo_mcp.leases import LeaseKeeper
from hailuo_mcp.ledger import SqliteLedger
from hailuo_mcp.models import Task, TaskStatus
from hailuo_mcp.saving import VideoSaver
from tests.ledger.support import complete, create

TASK = "task-saved-once"
LEASE_S = 0.5


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class GatedDownloader:
    """Writes the whole file, then returns once `gate` opens: the file is in place but its
    saver has not recorded it yet (a slow return, a stalled replica)."""

    def __init__(self, body: bytes) -> None:
        self.gate = anyio.Event()
        self.written = anyio.Event()
        self._body = body

    async def download(self, url: str, destination: Path, *, task_id: str) -> int:
        destination.write_bytes(self._body)
        self.written.set()
        await self.gate.wait()
        return len(self._body)


def settings_for(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {"HAILUO_OUTPUT_DIR": str(tmp_path / "videos"), "HAILUO_STATE_DIR": str(tmp_path)}
    )


def completed() -> Task:
    return Task(
        task_id=TASK, status=TaskStatus.COMPLETED, video_url=f"https://cdn.example/{TASK}.mp4"
    )


@pytest.mark.anyio
async def test_the_replica_that_records_second_removes_its_copy(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    settings.output_dir.mkdir()
    path = tmp_path / "ledger.sqlite3"
    async with (
        SqliteLedger(path, holder="host-a:1:a", lease_s=LEASE_S) as ledger_a,
        SqliteLedger(path, holder="host-b:2:b", lease_s=LEASE_S) as ledger_b,
    ):
        await create(ledger_a, TASK)
        await complete(ledger_a, TASK)
        slow, quick = GatedDownloader(b"replica A's copy"), GatedDownloader(b"replica B's copy")
        saver_a = VideoSaver(settings, ledger_a, slow, LeaseKeeper(ledger_a, LEASE_S))
        saver_b = VideoSaver(settings, ledger_b, quick, LeaseKeeper(ledger_b, LEASE_S))
        quick.gate.set()
        results: dict[str, Path | None] = {}

        async def save_a() -> None:
            results["a"] = await saver_a.save(completed())

        async with anyio.create_task_group() as group:
            group.start_soon(save_a)
            await slow.written.wait()  # A's file is in place, not yet recorded...
            await anyio.sleep(LEASE_S * 2)  # ...and its lease runs out (no renewals)
            results["b"] = await saver_b.save(completed())  # B takes over and records first
            slow.gate.set()  # A finishes after B
        record = await ledger_a.get(TASK)
    assert record is not None and record.video_path is not None
    assert results == {"a": Path(record.video_path), "b": Path(record.video_path)}
    # B saw A's file under the name and saved beside it; A, recording second, removed its own:
    # one file, B's, and the ledger and both answers name it.
    files = list(settings.output_dir.iterdir())
    assert files == [Path(record.video_path)]
    assert files[0].read_bytes() == b"replica B's copy"


@pytest.mark.anyio
async def test_a_file_the_ledger_could_not_record_is_removed_so_it_is_not_kept_twice(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    settings.output_dir.mkdir()
    path = tmp_path / "ledger.sqlite3"
    downloader = GatedDownloader(b"the video")
    ledger = SqliteLedger(path, lease_s=LEASE_S)
    await ledger.__aenter__()
    await create(ledger, TASK)
    await complete(ledger, TASK)
    saver = VideoSaver(settings, ledger, downloader, LeaseKeeper(ledger, LEASE_S))

    async def ledger_goes_away() -> None:
        # The file is in place; the ledger becomes unusable before it is recorded.
        await downloader.written.wait()
        await ledger.__aexit__(None, None, None)
        downloader.gate.set()

    failures: list[StorageError] = []

    async def save() -> None:
        try:
            await saver.save(completed())
        except StorageError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(ledger_goes_away)
        group.start_soon(save)
    assert len(failures) == 1  # the caller hears of it...
    assert list(settings.output_dir.iterdir()) == []  # ...and no unrecorded file is left
    # The next save, once the lease ran out and the ledger is back, keeps one file.
    await anyio.sleep(LEASE_S * 2)
    async with SqliteLedger(path, lease_s=LEASE_S) as back:
        again = VideoSaver(settings, back, downloader, LeaseKeeper(back, LEASE_S))
        saved = await again.save(completed())
    assert saved is not None and list(settings.output_dir.iterdir()) == [saved]
