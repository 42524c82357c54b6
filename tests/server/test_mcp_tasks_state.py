"""What an MCP task reports, from the ledger alone: ids, ttl, poll hints, endings."""

from __future__ import annotations

import string
import time
from datetime import UTC, datetime

from hailuo_mcp.ledger import ProtocolTaskRecord, TaskRecord
from hailuo_mcp.mcp_tasks.state import (
    DEFAULT_TTL_MS,
    expired,
    granted_ttl_ms,
    new_task_id,
    outcome_of,
    poll_interval_ms,
    view_of,
)
from hailuo_mcp.models import TaskStatus

E = 77.0  # the expected seconds of a v2.3 · 6 s · 768p task


def record(status: TaskStatus, *, age_s: float = 0.0, **fields: object) -> TaskRecord:
    now = time.time()
    values: dict[str, object] = {
        "task_id": "hailuo-1",
        "status": status,
        "origin": "created",
        "model": "v2.3",
        "duration": 6,
        "resolution": 768,
        "created_at": now - age_s,
        "updated_at": now,
        **fields,
    }
    return TaskRecord.model_validate(values)


def protocol(**fields: object) -> ProtocolTaskRecord:
    now = time.time()
    values: dict[str, object] = {
        "id": new_task_id(),
        "task_id": "hailuo-1",
        "tool": "generate_video",
        "protocol_version": "2026-07-28",
        "status": "working",
        "ttl_ms": DEFAULT_TTL_MS,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return ProtocolTaskRecord.model_validate(values)


def test_task_ids_are_long_random_and_never_repeat() -> None:
    ids = {new_task_id() for _ in range(1000)}
    assert len(ids) == 1000
    allowed = set(string.ascii_letters + string.digits + "-_")
    assert all(len(i) >= 32 and set(i) <= allowed for i in ids)


def test_a_requested_ttl_is_granted_within_a_second_and_a_day() -> None:
    assert granted_ttl_ms(None) == DEFAULT_TTL_MS == 86_400_000
    assert granted_ttl_ms(60_000) == 60_000
    assert granted_ttl_ms(5) == 1000
    assert granted_ttl_ms(10**12) == DEFAULT_TTL_MS
    assert granted_ttl_ms(True) == DEFAULT_TTL_MS  # not a number of milliseconds
    task = protocol(ttl_ms=1000, created_at=time.time() - 2)
    assert expired(task, time.time()) and not expired(protocol(), time.time())


def test_the_poll_hint_is_dense_where_completion_is_likely_and_sparse_before() -> None:
    now = time.time()
    fresh = poll_interval_ms(record(TaskStatus.PENDING), E, now)
    assert 500 <= fresh <= 10_000  # the first look comes a few seconds after the create
    started = datetime.fromtimestamp(now - 5, UTC)
    early = poll_interval_ms(
        record(TaskStatus.PROCESSING, age_s=6, upstream_started_at=started), E, now
    )
    assert early >= 10_000  # five seconds into ~76: nothing to learn for a while
    due = datetime.fromtimestamp(now - 70, UTC)
    likely = poll_interval_ms(
        record(TaskStatus.PROCESSING, age_s=71, upstream_started_at=due), E, now
    )
    assert likely <= 2_000  # the likely end: as dense as our own polls
    saving = poll_interval_ms(record(TaskStatus.COMPLETED, video_url="http://v/1.mp4"), E, now)
    assert saving <= 2_000  # done upstream, the download is under way
    # The hints scale with the expected duration, like the schedule itself.
    assert poll_interval_ms(record(TaskStatus.PENDING), E / 100, now) < fresh


def test_a_task_ends_with_its_hailuo_task_story() -> None:
    assert outcome_of(record(TaskStatus.PROCESSING), following=True) is None
    assert outcome_of(record(TaskStatus.COMPLETED, video_path="/v.mp4"), following=False) == "saved"
    assert outcome_of(record(TaskStatus.FAILED), following=False) == "failed"
    assert outcome_of(record(TaskStatus.CANCELLED), following=False) == "lost"
    unsaved = record(TaskStatus.COMPLETED, video_url="http://v/1.mp4", error_kind="storage_failed")
    # The save failed: still working while the tracker retries, the tool's error once it stopped.
    assert outcome_of(unsaved, following=True) is None
    assert outcome_of(unsaved, following=False) == "save_failed"
    assert outcome_of(None, following=False) == "missing"


def test_a_cancelled_task_says_its_video_was_still_saved() -> None:
    task = protocol(status="cancelled", status_message="Cancelled by the client.")
    running = view_of(task, record(TaskStatus.PROCESSING), base_s=E)
    assert running.status == "cancelled" and running.ended and running.poll_interval_ms is None
    saved = view_of(task, record(TaskStatus.COMPLETED, video_path="/videos/a.mp4"), base_s=E)
    assert saved.message.endswith("The video was saved at /videos/a.mp4.")
    working = view_of(protocol(), record(TaskStatus.PENDING), base_s=E)
    assert working.status == "working" and "hailuo-1" in working.message
    assert working.poll_interval_ms is not None
