"""What each event writes, and how a row reads back: shared by the SQLite and PostgreSQL ledgers.

Column values come from here and only the SQL differs per backend, so both ledgers record the
same thing for the same event (tests/ledger/test_parity.py holds them to it).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Mapping
from typing import Any, Final

from hailuo_mcp.ledger.records import TaskRecord
from hailuo_mcp.models import Task, TaskStatus, VideoRequest
from hailuo_mcp.pricing import Estimate

TERMINAL: Final = ("completed", "failed", "cancelled")

# The rows `unfinished` and `claim_orphans` return: not ended, or completed with a video not
# yet saved. Plain SQL both backends read the same way.
UNFINISHED_SQL: Final = (
    "(status NOT IN ('completed', 'failed', 'cancelled') OR (status = 'completed' AND "
    "video_path IS NULL AND video_url IS NOT NULL))"
)

_READ: Final = frozenset(TaskRecord.model_fields)


def default_holder() -> str:
    """A lease holder id unique per process: host, pid (SQLite checks it), a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def created_values(
    request: VideoRequest,
    price: Estimate,
    *,
    image_source: str | None,
    file_name: str | None,
    owner: str,
) -> dict[str, Any]:
    """The columns a created task starts with (before its first snapshot)."""
    return {
        "owner": owner,
        "image_source": image_source,
        "file_name": file_name,
        "prompt": request.prompt,
        "model": request.model,
        "duration": request.duration,
        "resolution": request.resolution,
        "image_url": request.image_url,
        "expand_prompt": request.expand_prompt,
        "estimate_usd": price.usd,
        "estimate_points": price.points,
    }


def imported_values(task: Task) -> dict[str, Any]:
    """What a task created elsewhere says of itself in its input, where it is well formed."""
    data = task.input
    values: dict[str, Any] = {}
    for name in ("prompt", "model", "image_url"):
        if isinstance(data.get(name), str) and data[name]:
            values[name] = data[name]
    for name in ("duration", "resolution"):
        if isinstance(data.get(name), int) and not isinstance(data.get(name), bool):
            values[name] = data[name]
    if isinstance(data.get("expand_prompt"), bool):
        values["expand_prompt"] = data["expand_prompt"]
    return values


def seen_values(task: Task) -> dict[str, Any]:
    """The columns one snapshot of a task sets."""
    values: dict[str, Any] = {"status": task.status.value}
    if task.video_url:
        values["video_url"] = task.video_url
    if task.consumed_points is not None:
        values["consumed_points"] = task.consumed_points
    if task.status == TaskStatus.FAILED:
        values["error_kind"] = "task_failed"
        values["error_message"] = task.error_message or "no reason given"
    if task.status.is_terminal:
        values["finished_at"] = time.time()
    if task.created_at is not None:
        values["upstream_created_at"] = task.created_at.isoformat()
    if task.started_at is not None:
        values["upstream_started_at"] = task.started_at.isoformat()
    if task.ended_at is not None:
        values["upstream_ended_at"] = task.ended_at.isoformat()
    return values


def task_record(row: Mapping[str, Any]) -> TaskRecord:
    """A row of `tasks` (either backend) as a TaskRecord; lease and other columns are left out."""
    data = {key: value for key, value in row.items() if key in _READ}
    data["status"] = TaskStatus.parse(data["status"])
    if data.get("expand_prompt") is not None:
        data["expand_prompt"] = bool(data["expand_prompt"])
    return TaskRecord.model_validate(data)
