"""The result a task ends with: what the tool itself would have answered had it waited.

A saved video is the tool's ordinary result; a failed generation or a failed save is the
tool's isError result (the same text, `_meta` and structuredContent as a plain call gives).
Only a broken ledger, where no tool result can be built, is a JSON-RPC error.
"""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult
from mcp_types.jsonrpc import INTERNAL_ERROR

from hailuo_mcp.errors import DownloadError, HailuoError, StorageError, TaskFailedError
from hailuo_mcp.ledger import ProtocolTaskRecord, TaskRecord
from hailuo_mcp.mcp_tasks.state import Outcome
from hailuo_mcp.runtime import Runtime
from hailuo_mcp.tool_results import error_result, video_result


def dump(result: CallToolResult) -> dict[str, Any]:
    """A tool result as its JSON (camelCase, no nulls), to store and to send."""
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


async def final(
    outcome: Outcome,
    record: TaskRecord | None,
    task: ProtocolTaskRecord,
    runtime: Runtime,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """(tool result, JSON-RPC error, status message) of a task whose PiAPI task ended."""
    if record is None or outcome == "missing":
        message = f"The ledger has no row for Hailuo task {task.task_id}."
        return None, {"code": INTERNAL_ERROR, "message": message}, message
    service = runtime.service
    if outcome in ("saved", "lost"):
        waited = (record.finished_at or record.updated_at) - task.created_at
        answer = service.result_from_record(record, waited=max(0.0, waited))
        if task.warnings:
            answer = answer.model_copy(update={"warnings": [*task.warnings, *answer.warnings]})
        message = f"Video saved to {record.video_path}." if record.video_path else answer.next_step
        return dump(video_result(answer)), None, message
    error = _error_of(outcome, record)
    return dump(await error_result(error, runtime, video_schema=True)), None, error.message


def _error_of(outcome: Outcome, record: TaskRecord) -> HailuoError:
    """The error the tool would have answered for this ending."""
    if outcome == "failed":
        return TaskFailedError(
            f"Hailuo could not generate this video: {record.error_message or 'no reason given'}."
            " Nothing was charged.",
            task_id=record.task_id,
        )
    kind = DownloadError if record.error_kind == DownloadError.kind else StorageError
    return kind(
        f"The video could not be saved: {record.error_message or 'no reason given'}. It is "
        f"still at {record.video_url} for a while; get_task with task_id={record.task_id} "
        "tries again.",
        task_id=record.task_id,
    )
