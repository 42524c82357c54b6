"""The 2025-11-25 experimental tasks (SEP-1686) on the handshake era's wire.

The server declares the `tasks` capability and `execution.taskSupport: optional` on
generate_video and get_task; a `tools/call` carrying `task` runs the tool's quick part and
answers a CreateTaskResult; `tasks/result` blocks until the task ended and answers what the
call would have; `tasks/list` pages the tasks. SDK 2.3.0 sieves every handshake-era result
into its core shape (a CreateTaskResult would not survive), so this is a server middleware
above that sieve; the 2026 extension needs none of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import MethodBinding
from mcp.shared.exceptions import MCPError
from mcp.types import GetTaskPayloadRequestParams, PaginatedRequestParams
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND

from hailuo_mcp.errors import HailuoError
from hailuo_mcp.mcp_tasks import wire
from hailuo_mcp.mcp_tasks.calls import (
    TASK_TOOLS,
    TaskHome,
    known,
    quick_arguments,
    running_task,
)
from hailuo_mcp.mcp_tasks.state import granted_ttl_ms
from hailuo_mcp.tool_results import ERROR_META_KEY

# JSON-RPC's implementation-defined server error: the tool refused before any task existed
# for a reason other than its arguments (a cap, the credit, the user declining the price).
REFUSED = -32000
_LEGACY = frozenset({wire.LEGACY_VERSION})
_CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}


class LegacyTasks:
    """Server middleware: the 2025-11-25 tasks wire (capability, tool flags, task calls)."""

    def __init__(self, home: TaskHome) -> None:
        self._home = home

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Pass everything through, but for the three places 2025-11-25 tasks show."""
        if ctx.method == "initialize":
            return _with_capability(await call_next(ctx))
        if ctx.protocol_version != wire.LEGACY_VERSION or ctx.request_id is None:
            return await call_next(ctx)
        if ctx.method == "tools/list":
            return _with_task_support(await call_next(ctx))
        params = ctx.params or {}
        if ctx.method == "tools/call" and isinstance(params.get("task"), Mapping):
            return await self._task_call(ctx, params, call_next)
        return await call_next(ctx)

    async def _task_call(
        self, ctx: ServerRequestContext[Any, Any], params: Mapping[str, Any], call_next: CallNext
    ) -> HandlerResult:
        name = params.get("name")
        if name not in TASK_TOOLS:
            # The spec's answer for a tool whose taskSupport is absent (forbidden).
            raise MCPError(
                code=METHOD_NOT_FOUND,
                message=f"Tool {name!r} does not support task-augmented execution",
            )
        quick = quick_arguments(str(name), params.get("arguments"), require_wait=False)
        sent = params if quick is None else {**params, "arguments": quick}
        result = await call_next(replace(ctx, params=sent))
        if not isinstance(result, dict):
            return result
        answer = result
        started = (
            None
            if answer.get("isError")
            else running_task(answer.get("structuredContent"), even_done=True)
        )
        if started is None:
            raise _refused(answer)
        task_id, warnings = started
        task = cast(Mapping[str, Any], params["task"])
        try:
            view = await self._home.tasks_for(ctx).create(
                tool=str(name),
                task_id=task_id,
                protocol_version=wire.LEGACY_VERSION,
                ttl_ms=granted_ttl_ms(task.get("ttl")),
                warnings=warnings,
                session=ctx.session,
            )
        except HailuoError as exc:
            # No task without its row; the error still names the paid task, which the service
            # follows and saves (invariants 3 and 8).
            raise MCPError(
                code=INTERNAL_ERROR,
                message=f"Hailuo task {task_id} was created but no MCP task could be recorded "
                f"({exc.message}); it is followed and its video saved: call get_task with "
                f"task_id={task_id}.",
                data={"result": answer},
            ) from exc
        immediate = (
            f"{view.message} It runs in the background: its result comes with the task, or "
            f"call get_task with task_id={task_id}."
        )
        return wire.created_2025(view, immediate)


def legacy_methods(home: TaskHome) -> list[MethodBinding]:
    """tasks/result and tasks/list, on 2025-11-25 only (2026 answers Method not found)."""

    async def result(
        ctx: ServerRequestContext[Any, Any], params: GetTaskPayloadRequestParams
    ) -> dict[str, Any]:
        tasks = home.tasks_for(ctx)
        view = await known(tasks.wait_ended(params.task_id))
        if view.status == "failed" and view.error is not None:
            error = view.error
            raise MCPError(code=int(error["code"]), message=str(error["message"]))
        if view.status == "cancelled" or view.result is None:
            # The call was cancelled, not its paid task: the tool's answer about it now.
            return wire.result_2025(view, await known(tasks.current_result(params.task_id)))
        return wire.result_2025(view, view.result)

    async def listing(
        ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams
    ) -> dict[str, Any]:
        try:
            views, cursor = await home.tasks_for(ctx).page(params.cursor)
        except ValueError as exc:
            raise MCPError(code=INVALID_PARAMS, message=f"Invalid cursor: {exc}") from None
        answer: dict[str, Any] = {"tasks": [wire.task_2025(view) for view in views]}
        if cursor is not None:
            answer["nextCursor"] = cursor
        return answer

    return [
        MethodBinding("tasks/result", GetTaskPayloadRequestParams, result, _LEGACY),
        MethodBinding("tasks/list", PaginatedRequestParams, listing, _LEGACY),
    ]


def _with_capability(result: HandlerResult) -> HandlerResult:
    """Declare tasks in a 2025-11-25 initialize result (older versions have no tasks)."""
    if isinstance(result, dict) and result.get("protocolVersion") == wire.LEGACY_VERSION:
        answer = result
        capabilities = dict(answer.get("capabilities") or {})
        capabilities["tasks"] = _CAPABILITY
        return {**answer, "capabilities": capabilities}
    return result


def _with_task_support(result: HandlerResult) -> HandlerResult:
    """Mark the tools that may run as tasks (absent means forbidden)."""
    if not isinstance(result, dict):
        return result
    answer = result
    tools = []
    for tool in answer.get("tools") or []:
        if isinstance(tool, dict) and tool.get("name") in TASK_TOOLS:
            tool = {**tool, "execution": {"taskSupport": "optional"}}
        tools.append(tool)
    return {**answer, "tools": tools}


def _refused(answer: dict[str, Any]) -> MCPError:
    """The tool answered without a task to follow: the request fails, no task is made."""
    text = " ".join(
        block.get("text", "")
        for block in answer.get("content") or []
        if isinstance(block, dict) and block.get("type") == "text"
    )
    meta = answer.get("_meta")
    error = meta.get(ERROR_META_KEY) if isinstance(meta, dict) else None
    kind = error.get("error_kind") if isinstance(error, dict) else None
    code = INVALID_PARAMS if kind == "invalid_input" else REFUSED
    return MCPError(code=code, message=text or "No task was created.", data={"result": answer})
