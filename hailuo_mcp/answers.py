"""The one owner of the answer: a ledger row (and the wait's length) becomes a VideoResult.

Nothing rewrites a result's sentence afterwards; the server only turns it into content.
"""

from __future__ import annotations

from pathlib import Path

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import TaskFailedError, TaskNotFoundError
from hailuo_mcp.ledger import TaskRecord
from hailuo_mcp.models import Task, TaskStatus
from hailuo_mcp.results import VideoResult


def cost_usd(record: TaskRecord, points_per_usd: int) -> float | None:
    """What a task costs: the charged amount once completed, else the price estimate."""
    cost = record.estimate_usd
    if record.status == TaskStatus.COMPLETED and record.consumed_points:
        cost = record.consumed_points / points_per_usd
    return round(cost, 4) if cost is not None else None


def next_step(record: TaskRecord, settings: Settings) -> str:
    """What the assistant should do next, in one sentence."""
    status = record.status
    if record.video_path:
        return f"The video is saved at {record.video_path}."
    if status == TaskStatus.COMPLETED:
        return f"The video is ready at video_url; call get_task {record.task_id} to save it."
    if status.is_terminal:
        reason = f": {record.error_message}" if record.error_message else ""
        return f"The task ended with status {status.value}{reason}."
    return (
        f"The video is still being generated (status {status.value}). Call get_task with "
        f"task_id={record.task_id} and wait_seconds up to {settings.wait_seconds:g} to check "
        "again; it is saved automatically when it completes."
    )


def answer(record: TaskRecord, settings: Settings, *, waited: float = 0.0) -> VideoResult:
    """The answer about one task, from its ledger row."""
    emulated = settings.demo
    status = record.status
    return VideoResult(
        task_id=record.task_id,
        status=status,
        done=record.video_path is not None or status in (TaskStatus.FAILED, TaskStatus.CANCELLED),
        video_path=record.video_path,
        video_url=record.video_url,
        model=record.model,
        duration=record.duration,
        resolution=record.resolution,
        prompt=record.prompt,
        cost_usd=cost_usd(record, settings.points_per_usd),
        charged=status == TaskStatus.COMPLETED and not emulated,
        emulated=emulated,
        waited_seconds=round(waited, 2),
        generation_seconds=record.generation_seconds,
        created_at=record.created_iso,
        next_step=next_step(record, settings),
    )


def ended_answer(record: TaskRecord, settings: Settings) -> VideoResult | None:
    """The answer for a task that can no longer change, straight from the ledger."""
    if record.status == TaskStatus.COMPLETED and record.video_path:
        if Path(record.video_path).is_file():
            return answer(record, settings)
        return None  # saved once, since moved or deleted: look again and save it again
    if record.status == TaskStatus.FAILED:
        raise TaskFailedError(
            f"Hailuo could not generate this video: {record.error_message or 'no reason'}. "
            "Nothing was charged.",
            task_id=record.task_id,
        )
    if record.status == TaskStatus.CANCELLED:
        return answer(record, settings)
    return None


def not_yours(task_id: str) -> TaskNotFoundError:
    # No task id on the error: its answer must not show another caller's task.
    return TaskNotFoundError(
        f"task_id: no task {task_id} belongs to you (tasks are private to whoever created "
        "them); check the id, or list yours with list_tasks"
    )


def failed_error(task: Task) -> TaskFailedError:
    return TaskFailedError(
        f"Hailuo could not generate this video: {task.error_message or 'no reason given'}"
        f" (upstream code {task.error_code}). Nothing was charged.",
        task_id=task.task_id,
        upstream_code=task.error_code,
    )
