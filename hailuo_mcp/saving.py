"""VideoSaver: a completed task's video written once, whole, under HAILUO_OUTPUT_DIR.

Once per task in this process (a lock per task) and once across replicas (only the holder of
the task's lease downloads; the others wait, within a lease period, for its path in the ledger).
The downloader writes to a temporary file and renames it, so a file at its final path is always
complete.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

import anyio

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import HailuoError, StorageError
from hailuo_mcp.filenames import default_name, free_path
from hailuo_mcp.leases import LeaseKeeper
from hailuo_mcp.ledger import TaskLedger
from hailuo_mcp.models import Task

logger = logging.getLogger(__name__)

# How often a replica that does not hold a task looks for the holder's saved path.
_SAVED_ELSEWHERE_POLL_S = 0.25


class Downloader(Protocol):
    """Saves a finished video: complete at `destination`, or not there at all."""

    async def download(self, url: str, destination: Path, *, task_id: str) -> int:
        """Stream `url` to `destination`; returns the bytes written."""
        ...


class VideoSaver:
    """Downloads completed videos and records their paths; holds the leases' bookkeeping."""

    def __init__(
        self,
        settings: Settings,
        ledger: TaskLedger,
        downloader: Downloader,
        leases: LeaseKeeper | None,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._downloader = downloader
        # None: one process owns the ledger (tests that build a service by hand).
        self._leases = leases
        self._locks: dict[str, anyio.Lock] = {}

    def took(self, task_id: str) -> None:
        """The ledger just leased `task_id` to this replica (a create or an import)."""
        if self._leases is not None:
            self._leases.took(task_id)

    async def claim(self, task_id: str) -> bool:
        """Whether this replica may follow and save the task (no other live replica does).

        A lease held here already (taken by the create, the follow or a takeover, and renewed
        by the keeper) needs no second write; `record_saved`'s compare-and-set covers a lease
        lost since the last renewal.
        """
        if self._leases is None or self._leases.holds(task_id):
            return True
        return await self._leases.claim(task_id)

    def let_go(self, task_id: str) -> None:
        """This replica stops following the task: its lease runs out and is taken again."""
        if self._leases is not None:
            self._leases.let_go(task_id)

    async def release(self, task_id: str) -> None:
        """The task ended here: its lease is no longer needed."""
        if self._leases is not None:
            await self._leases.release(task_id)

    async def save(self, task: Task) -> Path | None:
        """Download a completed task's video once and record its path.

        None when another replica holds the task and did not finish saving it in time.
        """
        task_id = task.task_id
        if not task.video_url:
            raise HailuoError(
                "PiAPI reports the task completed but gave no video URL.", task_id=task_id
            )
        async with self._locks.setdefault(task_id, anyio.Lock()):
            record = await self._ledger.get(task_id)
            if record and record.video_path and Path(record.video_path).is_file():
                return Path(record.video_path)
            if not await self.claim(task_id):
                # One saver per task across replicas: the holder writes the file.
                return await self._saved_elsewhere(task_id)
            name = (record.file_name if record else None) or default_name(
                record.prompt if record else None,
                task_id,
                record.created_at if record else time.time(),
            )
            # A name already taken gets a suffix: a saved video is never overwritten.
            destination = free_path(self._settings.output_dir, name)
            # What the ledger said before the download: the record is written only over this.
            seen = record.video_path if record else None
            try:
                await self._downloader.download(task.video_url, destination, task_id=task_id)
            except HailuoError as exc:
                await self._ledger.record_save_failed(task_id, exc.kind, exc.message)
                if isinstance(exc, StorageError):
                    # The paid video is still upstream for a while: say where.
                    raise StorageError(
                        f"{exc.message} Video URL: {task.video_url}", task_id=task_id
                    ) from exc
                raise
            saved = await self._record(task_id, destination, seen)
            self._locks.pop(task_id, None)
            await self.release(task_id)
            return saved

    async def _record(self, task_id: str, destination: Path, seen: str | None) -> Path:
        """Record the saved file, unless another replica recorded its own first (its lease ran
        out while this one was still downloading): then this copy goes, so a video is kept once.
        """
        try:
            if await self._ledger.record_saved(task_id, destination, replacing=seen):
                return destination
            record = await self._ledger.get(task_id)
            theirs = Path(record.video_path) if record and record.video_path else None
            if theirs is None or theirs == destination:
                return destination  # no row to record in, or the same file under the same name
            if theirs.is_file():
                destination.unlink(missing_ok=True)
                logger.info("task %s was saved by another replica meanwhile", task_id)
                return theirs
            # Theirs is gone already: ours is the copy to keep.
            await self._ledger.record_saved(task_id, destination, replacing=str(theirs))
        except HailuoError:
            # Unrecorded, the file would be saved again beside itself next time: remove it.
            destination.unlink(missing_ok=True)
            raise
        return destination

    async def _saved_elsewhere(self, task_id: str) -> Path | None:
        """Wait, within a lease period, for the replica holding the task to save its video."""
        with anyio.move_on_after(self._settings.lease_seconds):
            while True:
                record = await self._ledger.get(task_id)
                if record and record.video_path and Path(record.video_path).is_file():
                    return Path(record.video_path)
                await anyio.sleep(_SAVED_ELSEWHERE_POLL_S)
        logger.info("task %s: another replica is still saving its video", task_id)
        return None
