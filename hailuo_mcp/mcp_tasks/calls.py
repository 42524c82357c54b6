"""What both eras share: which calls become tasks, how they return at once, where tasks live."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS

from hailuo_mcp.callers import caller_of
from hailuo_mcp.errors import HailuoError
from hailuo_mcp.mcp_tasks.registry import ProtocolTasks, TaskGone
from hailuo_mcp.runtime import Runtime

T = TypeVar("T")

# The tools whose calls can become tasks: they wait for a video.
TASK_TOOLS = frozenset({"generate_video", "get_task"})
_WAIT_MAX_S = 3600  # the tools' own bound on wait_seconds


class TaskHome:
    """One ProtocolTasks per runtime (a server runs one lifespan at a time)."""

    def __init__(self) -> None:
        self._tasks: ProtocolTasks | None = None

    def tasks_for(self, ctx: ServerRequestContext[Any, Any]) -> ProtocolTasks:
        """The tasks of the runtime this request runs in, as its caller may see them.

        Raises:
            MCPError: the server's resources are not open (the reason is told), or the
                request's X-PiAPI-Key header is malformed.
        """
        runtime = ctx.lifespan_context
        if not isinstance(runtime, Runtime):
            raise MCPError(code=INTERNAL_ERROR, message="The server is not running.")
        if runtime.opened is None:
            failure = runtime.failure
            raise MCPError(
                code=INTERNAL_ERROR,
                message=failure.message if failure else "The server's resources are not open.",
            )
        if self._tasks is None or self._tasks.runtime is not runtime:
            self._tasks = ProtocolTasks(runtime)
        try:
            caller = caller_of(ctx)
        except HailuoError as exc:
            raise MCPError(code=INVALID_PARAMS, message=exc.message) from exc
        return self._tasks.for_caller(caller)


def serving(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether the server's resources are open, so a call may become a task."""
    runtime = ctx.lifespan_context
    return isinstance(runtime, Runtime) and runtime.opened is not None


async def known(pending: Awaitable[T]) -> T:
    """Await a task read; an unknown or expired id is a JSON-RPC Invalid params error."""
    try:
        return await pending
    except TaskGone as gone:
        raise MCPError(code=INVALID_PARAMS, message=gone.message) from None


def quick_arguments(
    name: str, arguments: Mapping[str, Any] | None, *, require_wait: bool
) -> dict[str, Any] | None:
    """The arguments that make the tool return at once, or None to call it unchanged.

    A wait_seconds the tool would refuse is left for the tool to refuse (bad input stays an
    immediate error). get_task is a task only with a wait when `require_wait` (2026).
    """
    given = dict(arguments or {})
    wait = given.get("wait_seconds")
    valid = wait is None or (
        isinstance(wait, int | float) and not isinstance(wait, bool) and 0 <= wait <= _WAIT_MAX_S
    )
    if not valid:
        return None
    if name == "get_task" and require_wait and not wait:
        return None
    return {**given, "wait_seconds": 0}


def running_task(structured: object, *, even_done: bool = False) -> tuple[str, list[str]] | None:
    """(PiAPI task id, warnings) of a tool's structured answer about a task, else None.

    Without `even_done`, a task that is already done (saved, failed) gives None: the plain
    result says it all.
    """
    if not isinstance(structured, dict):
        return None
    task_id = structured.get("task_id")
    if not isinstance(task_id, str) or (structured.get("done") and not even_done):
        return None
    warnings = structured.get("warnings")
    kept = [w for w in warnings if isinstance(w, str)] if isinstance(warnings, list) else []
    return task_id, kept


def started_task(result: HandlerResult) -> tuple[str, list[str]] | None:
    """(PiAPI task id, warnings) of a tool result about a task still running, else None."""
    if not isinstance(result, CallToolResult) or result.is_error:
        return None
    return running_task(result.structured_content)
