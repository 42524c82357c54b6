"""Rows for the ledger tests, written only through the protocol's own events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hailuo_mcp.ledger import LOCAL_OWNER, ProtocolTaskRecord, TaskLedger
from hailuo_mcp.models import Task, TaskStatus, VideoRequest
from hailuo_mcp.pricing import estimate

STARTED = datetime(2026, 1, 25, 13, 0, tzinfo=UTC)


async def create(
    ledger: TaskLedger,
    task_id: str,
    *,
    owner: str = LOCAL_OWNER,
    prompt: str = "a cat on a skateboard",
    duration: int = 6,
    status: TaskStatus = TaskStatus.PENDING,
) -> None:
    """A task created through `ledger` (journaled attempt, then the create)."""
    request = VideoRequest(prompt=prompt, duration=duration)  # type: ignore[arg-type]
    price = estimate(request.model, request.duration, request.resolution, points_per_usd=10**7)
    attempt = await ledger.record_attempt(request.upstream_input(), owner=owner)
    task = Task(task_id=task_id, status=status, created_at=STARTED)
    await ledger.record_created(
        task, request, price, attempt_id=attempt, file_name=f"{task_id}.mp4", owner=owner
    )


async def complete(
    ledger: TaskLedger, task_id: str, *, queue_s: float = 2.0, generation_s: float = 70.0
) -> None:
    """PiAPI's snapshot of the task completed, with its three stamps, a URL and usage."""
    started = STARTED + timedelta(seconds=queue_s)
    await ledger.record_seen(
        Task(
            task_id=task_id,
            status=TaskStatus.COMPLETED,
            video_url=f"https://cdn.example/{task_id}.mp4",
            consumed_points=1_900_000,
            created_at=STARTED,
            started_at=started,
            ended_at=started + timedelta(seconds=generation_s),
        )
    )


def protocol_task(
    task_id: str, pid: str, *, owner: str = LOCAL_OWNER, at: float | None = None, **fields: Any
) -> ProtocolTaskRecord:
    """A working protocol task following PiAPI task `task_id`."""
    now = time.time() if at is None else at
    values: dict[str, Any] = {
        "id": pid,
        "task_id": task_id,
        "owner": owner,
        "tool": "generate_video",
        "protocol_version": "2025-11-25",
        "status": "working",
        "ttl_ms": 60_000,
        "warnings": ["a warning"],
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return ProtocolTaskRecord.model_validate(values)
