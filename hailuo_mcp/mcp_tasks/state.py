"""What an MCP task is now, read from the ledger alone: status, message, poll hint, ttl.

No MCP here. A protocol task follows one PiAPI task; it is `working` until that task's story
ends (video saved, generation failed, task lost, or the save failed and nothing retries it),
and `cancelled` when a client cancelled it: the PiAPI task is still followed then, because
Hailuo cannot stop a task once created and charges for it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from hailuo_mcp.ledger import ProtocolTaskRecord, TaskRecord
from hailuo_mcp.ledger.records import ProtocolTaskStatus
from hailuo_mcp.models import TaskStatus
from hailuo_mcp.polling import QUEUE_SHARE, PollSchedule, expected_seconds

# A task and its result are kept this long unless the client asks for less (2025-11-25 `ttl`):
# a day, like the resumption of unfinished PiAPI tasks, and PiAPI's video URLs expire anyway.
DEFAULT_TTL_MS = 24 * 3600 * 1000
MIN_TTL_MS = 1000
# An expired task answers "expired" for this long before its row is deleted ("not found").
FORGET_AFTER_S = 3600.0
# Between the end of generation and the saved file: a download, so poll at a dense spacing.
SAVING_SHARE = 0.025
# Unguessable: the id is the only thing a client needs to read a task (192 random bits).
_ID_BYTES = 24

Outcome = Literal["saved", "failed", "lost", "save_failed", "missing"]
"""How the PiAPI task's story ended, once it has."""


def new_task_id() -> str:
    """A fresh MCP task id that nobody can guess or enumerate."""
    return secrets.token_urlsafe(_ID_BYTES)


def granted_ttl_ms(requested: object) -> int:
    """The ttl a task gets: the client's wish (2025-11-25) within [1 s, a day], else a day."""
    if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0:
        return max(MIN_TTL_MS, min(requested, DEFAULT_TTL_MS))
    return DEFAULT_TTL_MS


def expired(task: ProtocolTaskRecord, now: float) -> bool:
    """Whether the task's ttl has run out."""
    return task.ttl_ms is not None and now > task.created_at + task.ttl_ms / 1000


def iso(epoch: float) -> str:
    """An ISO 8601 UTC timestamp to the millisecond, as the task shapes carry them."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def outcome_of(record: TaskRecord | None, *, following: bool) -> Outcome | None:
    """How the PiAPI task ended for the tool that waits for it, or None while it goes on."""
    if record is None:
        return "missing"
    if record.video_path:
        return "saved"
    if record.status == TaskStatus.FAILED:
        return "failed"
    if record.status == TaskStatus.CANCELLED:
        return "lost"  # the demo emulator restarted and forgot it
    if record.status == TaskStatus.COMPLETED and record.error_kind and not following:
        return "save_failed"  # the tool would have answered this error; nothing retries it now
    return None


def needs_following(record: TaskRecord | None) -> bool:
    """Whether the PiAPI task still has something to happen: generation or the save."""
    if record is None or record.video_path:
        return False
    return not record.status.is_terminal or (
        record.status == TaskStatus.COMPLETED and record.video_url is not None
    )


def expected_for(record: TaskRecord, base_s: float) -> float:
    """Expected seconds from create to completion for this task's model and size."""
    return expected_seconds(
        base_s, record.model or "v2.3", record.duration or 6, record.resolution or 768
    )


def poll_interval_ms(record: TaskRecord, base_s: float, now: float) -> int:
    """When a client should ask again: where our own schedule would look next.

    Our background follow polls PiAPI on this schedule (webhooks may end it sooner), so a
    client polling tasks/get at these moments learns of the end about as fast as our own wait.
    """
    expected = expected_for(record, base_s)
    since = max(0.0, now - record.created_at)
    if record.status == TaskStatus.COMPLETED:
        return _ms(SAVING_SHARE * expected)
    schedule = PollSchedule(expected)
    if record.status.is_started:
        if record.upstream_started_at is not None:
            running = now - record.upstream_started_at.timestamp()
        else:
            running = since - QUEUE_SHARE * expected
        schedule.assume_started(max(0.0, running), since)
    elif since > 0:
        schedule.observe(since, record.status)  # queued: the queue's spacing from now on
    return _ms(schedule.next_delay(since))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@dataclass(frozen=True)
class TaskView:
    """One MCP task as both protocol eras report it (statuses as the 2026 extension has them).

    A tool result with isError is `completed` here; the 2025-11-25 shapes report it `failed`.
    """

    id: str
    status: ProtocolTaskStatus
    message: str
    created_at: float
    updated_at: float
    ttl_ms: int | None
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None  # the CallToolResult, once completed
    error: dict[str, Any] | None = None  # the JSON-RPC error, once failed

    @property
    def ended(self) -> bool:
        """Whether the status is terminal."""
        return self.status != "working"

    @property
    def tool_error(self) -> bool:
        """Whether the task completed with a tool result that is an error."""
        return bool(self.result and self.result.get("isError"))


def working_message(record: TaskRecord, base_s: float) -> str:
    """What a working task is doing, naming the PiAPI task."""
    if record.status == TaskStatus.COMPLETED:
        return f"Hailuo task {record.task_id} is done; its video is being saved."
    expected = expected_for(record, base_s)
    return (
        f"Hailuo task {record.task_id} is {record.status.value} (about {expected:.0f} s in "
        "all); the video is saved on the server when it completes."
    )


def cancel_message(task_id: str) -> str:
    """The status message a cancelled task keeps: what the cancel did and did not do."""
    return (
        f"Cancelled by the client. Hailuo cannot stop task {task_id} once created, and charges "
        "for it if it completes, so the server still follows it and saves its video: get_task "
        f"with task_id={task_id} returns it."
    )


def cancelled_message(task: ProtocolTaskRecord, record: TaskRecord | None) -> str:
    """A cancelled task's message, saying where its video went once it was saved."""
    message = task.status_message or cancel_message(task.task_id)
    if record is not None and record.video_path:
        message += f" The video was saved at {record.video_path}."
    return message


def view_of(
    task: ProtocolTaskRecord,
    record: TaskRecord | None,
    *,
    base_s: float,
    now: float | None = None,
) -> TaskView:
    """The view of a task from its row (stored outcome) and its PiAPI task's row."""
    now = time.time() if now is None else now
    updated = max(task.updated_at, record.updated_at if record else 0.0)
    if task.status == "working" and record is not None:
        return TaskView(
            id=task.id,
            status="working",
            message=working_message(record, base_s),
            created_at=task.created_at,
            updated_at=updated,
            ttl_ms=task.ttl_ms,
            poll_interval_ms=poll_interval_ms(record, base_s, now),
        )
    message = task.status_message or ""
    if task.status == "cancelled":
        message = cancelled_message(task, record)
    return TaskView(
        id=task.id,
        status=task.status,
        message=message,
        created_at=task.created_at,
        updated_at=updated,
        ttl_ms=task.ttl_ms,
        result=task.result,
        error=task.error,
    )
