"""What the ledger keeps of a task, and the protocol every ledger implements.

Writes are named after what happened (a create was attempted, a task was created, seen, saved),
so the column mapping stays private to each implementation and a second backend is one class.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict

from hailuo_mcp.models import Task, TaskStatus, VideoRequest
from hailuo_mcp.pricing import Estimate

# The owner of rows made without any caller identity: stdio, loopback HTTP without tokens, and
# every row written before owners existed.
LOCAL_OWNER: Final = "local"


def iso_utc(epoch: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC, to the second."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class TaskRecord(BaseModel):
    """One task as the ledger knows it."""

    # Built on the first row read, not at start-up (no tool schema includes it).
    model_config = ConfigDict(defer_build=True)

    task_id: str
    status: TaskStatus
    origin: str  # "created" here, or "imported" (first seen through get_task)
    owner: str = LOCAL_OWNER  # the principal whose task this is (callers.py)
    prompt: str | None = None
    model: str | None = None
    duration: int | None = None
    resolution: int | None = None
    image_url: str | None = None
    image_source: str | None = None  # the image as the user gave it (a local path, say)
    file_name: str | None = None  # the user's (sanitised) name for the saved video
    expand_prompt: bool | None = None
    estimate_usd: float | None = None
    estimate_points: int | None = None
    consumed_points: int | None = None
    video_url: str | None = None
    video_path: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None
    upstream_started_at: datetime | None = None
    upstream_ended_at: datetime | None = None

    @property
    def created_iso(self) -> str:
        """Creation time as an ISO 8601 UTC string."""
        return iso_utc(self.created_at) or ""

    @property
    def generation_seconds(self) -> float | None:
        """Upstream time from the start to the end of generation, once known."""
        if self.upstream_started_at and self.upstream_ended_at:
            return round((self.upstream_ended_at - self.upstream_started_at).total_seconds(), 2)
        return None


class TaskTiming(NamedTuple):
    """How long one completed task queued and generated, in PiAPI's seconds."""

    queue_s: float | None  # None when PiAPI's create time is unknown (rows from older releases)
    generation_s: float

    @classmethod
    def from_stamps(cls, created: str | None, started: str, ended: str) -> TaskTiming | None:
        """Times from PiAPI's stamps (its clock at both ends); None when they make no sense."""
        try:
            start, end = datetime.fromisoformat(started), datetime.fromisoformat(ended)
            begun = datetime.fromisoformat(created) if created else None
        except ValueError:
            return None
        generation = (end - start).total_seconds()
        if generation <= 0:
            return None
        queue = (start - begun).total_seconds() if begun is not None else None
        return cls(queue if queue is not None and queue >= 0 else None, generation)


ProtocolTaskStatus = Literal["working", "completed", "failed", "cancelled"]


class ProtocolTaskRecord(BaseModel):
    """One MCP protocol task (tasks extension or 2025-11-25 tasks), following one PiAPI task."""

    model_config = ConfigDict(defer_build=True)

    id: str  # the MCP task id: unguessable, the only handle a client has
    task_id: str  # the PiAPI task it follows
    owner: str = LOCAL_OWNER  # the principal that created it; nobody else sees it
    tool: str
    protocol_version: str  # the protocol the task was created on
    status: ProtocolTaskStatus
    status_message: str | None = None
    ttl_ms: int | None = None
    warnings: list[str] = []  # the tool's warnings from before the create, for the final result
    result: dict[str, Any] | None = None  # the tool result, once the task ended
    error: dict[str, Any] | None = None  # a JSON-RPC error, for a failed task
    created_at: float
    updated_at: float


class TaskLedger(Protocol):
    """Where tasks are recorded: SQLite for one machine, PostgreSQL for replicas.

    Ownership: every task and protocol task row has an `owner` (a principal, callers.py). Reads
    that take `owner` return only that owner's rows; `owner=None` means every owner and is for
    the server's own work (following, saving, webhooks), never for answering a caller.

    Leases: a ledger instance is one replica (its `holder` id). Only the holder of a task's lease
    follows it and saves its video, so an unfinished task is followed by one live replica at a
    time and saved once. A lease lasts `lease_s` seconds unless renewed; a dead replica's leases
    expire and `claim_orphans` hands its tasks to another. PostgreSQL times leases on the
    database's clock; SQLite, shared by processes of one machine, also frees at once a lease
    whose holder (host:pid:token) names this host and a process that has ended.
    `record_created` and a `record_imported` that inserted lease the row to this replica.
    docs/LEDGER.md.
    """

    @property
    def holder(self) -> str:
        """This replica's lease holder id (unique per process)."""
        ...

    async def ping(self) -> None:
        """Raise StorageError unless the ledger answers now (readiness)."""
        ...

    async def record_attempt(
        self, request_input: dict[str, Any], *, owner: str = LOCAL_OWNER
    ) -> int:
        """A create is about to be sent: journal it first and return its attempt id."""
        ...

    async def record_attempt_failed(self, attempt_id: int, kind: str, message: str) -> None:
        """The attempt made no task we know of (the error kind and message)."""
        ...

    async def record_created(
        self,
        task: Task,
        request: VideoRequest,
        price: Estimate,
        *,
        attempt_id: int,
        image_source: str | None = None,
        file_name: str | None = None,
        owner: str = LOCAL_OWNER,
    ) -> None:
        """PiAPI created `task` for `request`; closes the attempt in the same transaction.

        The new row is leased to this replica (`holder`). The creator owns it even if a webhook
        recorded the task a moment earlier.
        """
        ...

    async def record_imported(self, task: Task, *, owner: str = LOCAL_OWNER) -> bool:
        """A task created elsewhere, first seen through get_task or a webhook.

        Returns False (and changes nothing) when the task is already recorded, whoever owns it.
        """
        ...

    async def record_seen(self, task: Task) -> None:
        """A fresh snapshot of a known task (status, URL, usage, error, upstream times)."""
        ...

    async def record_saved(self, task_id: str, path: Path, *, replacing: str | None = None) -> bool:
        """The task's video is complete at `path`; any earlier save error is cleared.

        Written only if the recorded path is still `replacing` (the one the saver read before
        its download; None: no path yet), so two savers never both record: False when another
        recorded first (or the task is unknown).
        """
        ...

    async def record_save_failed(self, task_id: str, kind: str, message: str) -> None:
        """The video could not be downloaded or written (it is still at its URL)."""
        ...

    async def record_lost(self, reason: str) -> int:
        """End every unfinished task as cancelled with `reason`, its lease freed; how many."""
        ...

    async def get(self, task_id: str, *, owner: str | None = None) -> TaskRecord | None:
        """The record of one task (of `owner`, when given), or None."""
        ...

    async def recent(
        self, limit: int, status: TaskStatus | None = None, *, owner: str | None = None
    ) -> list[TaskRecord]:
        """Newest tasks first, optionally of one status and one owner."""
        ...

    async def created_since(self, epoch: float, *, owner: str | None = None) -> list[TaskRecord]:
        """Every task recorded at or after `epoch`, oldest first (spend, caps, duplicates)."""
        ...

    async def unfinished(self, max_age_s: float) -> list[TaskRecord]:
        """Recent tasks still worth following (not ended, or completed and not saved), oldest
        first."""
        ...

    async def claim(self, task_id: str) -> bool:
        """Take or keep the lease on one task: True when this replica holds it now.

        False when another live replica holds it, or the task is unknown.
        """
        ...

    async def renew(self, task_ids: list[str]) -> set[str]:
        """Extend this replica's leases on `task_ids`; returns the ids it still holds."""
        ...

    async def release(self, task_id: str) -> None:
        """Give up this replica's lease on one task (followed to its end, or handed on); a
        lease another replica holds is left alone."""
        ...

    async def claim_orphans(self, max_age_s: float, limit: int) -> list[TaskRecord]:
        """Unfinished recent tasks whose lease is free or expired, leased to this replica in
        one step (no two replicas get the same task)."""
        ...

    async def completed_timings(
        self, model: str, duration: int, resolution: int, limit: int
    ) -> list[TaskTiming]:
        """Queue and generation seconds of the newest `limit` completed tasks of one kind."""
        ...

    async def record_protocol_task(self, task: ProtocolTaskRecord) -> None:
        """A protocol task was created (durable before its CreateTaskResult is sent)."""
        ...

    async def record_protocol_outcome(
        self,
        task_id: str,
        status: ProtocolTaskStatus,
        *,
        status_message: str | None = None,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """A protocol task that had not ended moved to `status`; False when it had ended."""
        ...

    async def protocol_task(
        self, task_id: str, *, owner: str | None = None
    ) -> ProtocolTaskRecord | None:
        """One protocol task by its MCP task id (of `owner`, when given), or None."""
        ...

    async def protocol_tasks(
        self,
        limit: int,
        *,
        after: tuple[float, str] | None = None,
        owner: str | None = None,
    ) -> list[ProtocolTaskRecord]:
        """Protocol tasks newest first, after the (created_at, id) a previous page ended on."""
        ...

    async def forget_protocol_tasks(self, expired_before: float) -> int:
        """Delete protocol tasks whose ttl ran out before `expired_before` (PiAPI rows stay)."""
        ...
