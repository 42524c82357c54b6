"""Where a task sits on its poll schedule: its kind, and how far along it already is.

A task created by this call starts its schedule at its first look; one found under way (a
get_task, a resumed or taken-over task) is placed by the best clock available: our own record
of its create, PiAPI's start time, or, failing both, midway through generation.
"""

from __future__ import annotations

import time

from hailuo_mcp.config import Settings
from hailuo_mcp.history import TimingHistory
from hailuo_mcp.ledger import TaskLedger, TaskRecord
from hailuo_mcp.models import Task
from hailuo_mcp.polling import QUEUE_SHARE, PollSchedule, expected_seconds


async def place_on_schedule(
    task: Task,
    *,
    ledger: TaskLedger,
    history: TimingHistory,
    settings: Settings,
    safety_net: bool,
    created_here: bool,
) -> PollSchedule:
    """The poll schedule of `task`, with the task placed where it is now.

    `safety_net`: webhooks tell the end, so polls only catch a missed delivery.
    """
    # Read here and dropped on return: a wait would otherwise hold the row (~3 KB a task).
    record = await ledger.get(task.task_id)
    kind = kind_of(task, record)
    expected = expected_seconds(settings.expected_seconds, *kind)
    # Polls go where tasks of this kind ended before (the page's figures until then).
    durations = await history.durations(*kind, expected_s=expected)
    schedule = PollSchedule(
        expected,
        safety_net=safety_net,
        durations=durations,
        base_s=settings.expected_seconds,
    )
    seed_schedule(schedule, task, record, created_here=created_here)
    return schedule


def kind_of(task: Task, record: TaskRecord | None) -> tuple[str, int, int]:
    """Model, duration and resolution: the ledger's, else the task's input."""
    model = (record.model if record and record.model else None) or str(
        task.input.get("model") or "v2.3"
    )
    duration = (record.duration if record and record.duration else None) or _int(
        task.input.get("duration"), 6
    )
    resolution = (record.resolution if record and record.resolution else None) or _int(
        task.input.get("resolution"), 768
    )
    return model, duration, resolution


def seed_schedule(
    schedule: PollSchedule, task: Task, record: TaskRecord | None, *, created_here: bool
) -> None:
    """Place a task that is already under way on its schedule."""
    if created_here or not task.status.is_started:
        return  # fresh from create, or still queued: the schedule starts from its first look
    if record is not None and record.origin == "created":
        # Our own clock saw the create: the most trustworthy basis.
        since_create = time.time() - record.created_at
        schedule.assume_started(since_create - QUEUE_SHARE * schedule.expected_s, 0.0)
        return
    if task.started_at is not None:
        running = time.time() - task.started_at.timestamp()
        if 0 <= running <= 10 * schedule.expected_s:
            schedule.assume_started(running, 0.0)
            return
    # Unknown start: assume it is midway, which leads straight into the dense window.
    schedule.assume_started(0.6 * schedule.generation_s, 0.0)


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
