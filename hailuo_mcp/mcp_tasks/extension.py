"""TasksExtension: generate_video (and get_task with a wait) as MCP protocol tasks.

On 2026-07-28, for a request that declares `io.modelcontextprotocol/tasks`, the `tools/call`
interceptor runs the tool's quick part (arguments, confirmation, the one create, or one look)
and answers a CreateTaskResult instead of waiting; `tasks/get`, `tasks/update` and
`tasks/cancel` follow the extension. The 2025-11-25 experimental tasks (the `task` field of
`tools/call`, `tasks/result`, `tasks/list`) live in `legacy.py`: the SDK sieves every legacy
result into its core shape, so only a server middleware above that sieve can answer them.
A request that asks for neither is served exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CallToolRequestParams,
    CancelTaskRequestParams,
    GetTaskRequestParams,
    RequestParams,
)
from mcp_types.jsonrpc import INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from hailuo_mcp.errors import HailuoError
from hailuo_mcp.mcp_tasks import wire
from hailuo_mcp.mcp_tasks.calls import (
    TASK_TOOLS,
    TaskHome,
    known,
    quick_arguments,
    serving,
    started_task,
)
from hailuo_mcp.mcp_tasks.legacy import LegacyTasks, legacy_methods
from hailuo_mcp.mcp_tasks.registry import TaskEnded
from hailuo_mcp.mcp_tasks.state import DEFAULT_TTL_MS

logger = logging.getLogger(__name__)

# tasks/get and tasks/cancel serve both eras; tasks/update is the extension's alone.
_BOTH_ERAS = frozenset({wire.LEGACY_VERSION, *MODERN_PROTOCOL_VERSIONS})


class UpdateTaskParams(RequestParams):
    """tasks/update: the task and responses to its outstanding input requests."""

    task_id: str
    input_responses: dict[str, Any] = Field(default_factory=dict)


class TasksExtension(Extension):
    """The Tasks extension and the 2025-11-25 tasks over one ProtocolTasks per runtime."""

    identifier = wire.EXTENSION_ID

    def __init__(self) -> None:
        self._home = TaskHome()
        # Register with `server.middleware.append(...)`: the 2025-11-25 wire work.
        self.middleware = LegacyTasks(self._home)

    def methods(self) -> Sequence[MethodBinding]:
        """tasks/get and tasks/cancel (both eras), tasks/update (2026), and the 2025 ones."""
        return [
            MethodBinding("tasks/get", GetTaskRequestParams, self._get, _BOTH_ERAS),
            MethodBinding("tasks/cancel", CancelTaskRequestParams, self._cancel, _BOTH_ERAS),
            MethodBinding(
                "tasks/update",
                UpdateTaskParams,
                self._update,
                frozenset(MODERN_PROTOCOL_VERSIONS),
            ),
            *legacy_methods(self._home),
        ]

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        """A declared 2026 client gets a CreateTaskResult once the tool's quick part is done."""
        if not self._wants_task(params, ctx):
            return await call_next(ctx)
        quick = quick_arguments(params.name, params.arguments, require_wait=True)
        if quick is None or not serving(ctx):
            return await call_next(ctx)  # the tool itself answers (its own error, or a result)
        # The handler is invoked with this very params object (the SDK's interceptor contract):
        # with no wait it returns right after the create or the first look.
        params.arguments = quick
        result = await call_next(ctx)
        started = started_task(result)
        if started is None:
            return result  # an error (no task made), a question for the user, or already done
        task_id, warnings = started
        try:
            view = await self._home.tasks_for(ctx).create(
                tool=params.name,
                task_id=task_id,
                protocol_version=ctx.protocol_version,
                ttl_ms=DEFAULT_TTL_MS,
                warnings=warnings,
            )
        except HailuoError as exc:
            # No task without its row; the plain answer still names the paid task, which the
            # service follows and saves (invariants 3 and 8).
            logger.error("Hailuo task %s: no MCP task (%s)", task_id, exc.message)
            return result
        return wire.created_2026(view)

    def _wants_task(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any]
    ) -> bool:
        if params.name not in TASK_TOOLS or ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return False
        capabilities = ctx.session.client_capabilities
        declared = capabilities.extensions if capabilities else None
        # Declared on this request: the 2026 capabilities travel with each request.
        return bool(declared) and self.identifier in (declared or {})

    def _modern(self, ctx: ServerRequestContext[Any, Any]) -> bool:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return False
        require_client_extension(ctx, self.identifier)
        return True

    async def _get(
        self, ctx: ServerRequestContext[Any, Any], params: GetTaskRequestParams
    ) -> dict[str, Any]:
        modern = self._modern(ctx)
        view = await known(self._home.tasks_for(ctx).view(params.task_id))
        return wire.got_2026(view) if modern else wire.task_2025(view)

    async def _cancel(
        self, ctx: ServerRequestContext[Any, Any], params: CancelTaskRequestParams
    ) -> dict[str, Any]:
        modern = self._modern(ctx)
        tasks = self._home.tasks_for(ctx)
        try:
            view = await known(tasks.cancel(params.task_id))
        except TaskEnded as ended:
            if modern:
                return wire.ack_2026()  # cooperative: acknowledged, the task keeps its ending
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Cannot cancel task: already in terminal status '{ended.status}'",
            ) from None
        return wire.ack_2026() if modern else wire.task_2025(view)

    async def _update(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams
    ) -> dict[str, Any]:
        self._modern(ctx)
        # Our tasks never ask for input, so no response can match an outstanding request:
        # the spec has them ignored; the task must exist all the same.
        await known(self._home.tasks_for(ctx).view(params.task_id))
        return wire.ack_2026()
