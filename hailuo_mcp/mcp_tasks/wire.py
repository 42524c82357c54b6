"""A task on the wire, in the shape of each era.

2026-07-28 (the `io.modelcontextprotocol/tasks` extension): `ttlMs`/`pollIntervalMs`, a
`resultType` on every result ("task" only on CreateTaskResult), the tool result or the
JSON-RPC error inlined in the task once it ended.
2025-11-25 (experimental tasks): `ttl`/`pollInterval`, CreateTaskResult wraps the task, the
result comes from `tasks/result`, and a tool result with isError makes the task `failed`.
"""

from __future__ import annotations

from typing import Any

import mcp_types.methods as methods

from hailuo_mcp.mcp_tasks.state import TaskView, iso

EXTENSION_ID = "io.modelcontextprotocol/tasks"
LEGACY_VERSION = "2025-11-25"
# Where a 2025-11-25 host finds the words to hand the model while the task runs.
IMMEDIATE_RESPONSE_KEY = "io.modelcontextprotocol/model-immediate-response"
# The 2025-11-25 key tying a tasks/result answer to its task.
RELATED_TASK_KEY = "io.modelcontextprotocol/related-task"


def _common(view: TaskView) -> dict[str, Any]:
    fields: dict[str, Any] = {"taskId": view.id, "status": view.status}
    if view.message:
        fields["statusMessage"] = view.message
    fields["createdAt"] = iso(view.created_at)
    fields["lastUpdatedAt"] = iso(view.updated_at)
    return fields


def task_2026(view: TaskView) -> dict[str, Any]:
    """The extension's DetailedTask: the task, with its result or error once it ended."""
    fields = _common(view)
    fields["ttlMs"] = view.ttl_ms
    if view.poll_interval_ms is not None and not view.ended:
        fields["pollIntervalMs"] = view.poll_interval_ms
    if view.status == "completed" and view.result is not None:
        fields["result"] = tool_result(view.result, "2026-07-28")
    if view.status == "failed" and view.error is not None:
        fields["error"] = view.error
    return fields


def created_2026(view: TaskView) -> dict[str, Any]:
    """The extension's CreateTaskResult."""
    return {"resultType": "task", **task_2026(view)}


def got_2026(view: TaskView) -> dict[str, Any]:
    """The extension's GetTaskResult."""
    return {"resultType": "complete", **task_2026(view)}


def ack_2026() -> dict[str, Any]:
    """The extension's empty acknowledgement (tasks/update, tasks/cancel)."""
    return {"resultType": "complete"}


def legacy_status(view: TaskView) -> str:
    """The 2025-11-25 status: a tool result with isError is `failed` there."""
    return "failed" if view.status == "completed" and view.tool_error else view.status


def task_2025(view: TaskView) -> dict[str, Any]:
    """The 2025-11-25 Task."""
    fields = _common(view)
    fields["status"] = legacy_status(view)
    fields["ttl"] = view.ttl_ms
    if view.poll_interval_ms is not None and not view.ended:
        fields["pollInterval"] = view.poll_interval_ms
    return fields


def created_2025(view: TaskView, immediate: str) -> dict[str, Any]:
    """The 2025-11-25 CreateTaskResult, with words for the model while the task runs."""
    return {"task": task_2025(view), "_meta": {IMMEDIATE_RESPONSE_KEY: immediate}}


def result_2025(view: TaskView, result: dict[str, Any]) -> dict[str, Any]:
    """A tasks/result answer: the tool result the call would have returned, tied to its task."""
    shaped = tool_result(result, LEGACY_VERSION)
    meta = dict(shaped.get("_meta") or {})
    meta[RELATED_TASK_KEY] = {"taskId": view.id}
    return {**shaped, "_meta": meta}


def tool_result(result: dict[str, Any], version: str) -> dict[str, Any]:
    """A stored tool result in the shape `version` gives a tools/call result."""
    return methods.serialize_server_result("tools/call", version, result)
