"""HailuoServer: the SDK's MCPServer with our answers where the SDK's would not do.

Arguments the SDK refuses get our error format; resources/list adds the caller's saved videos;
saved videos are read from disk in chunks (task_resource.py). The helpers every tool uses live
here too: the service for the request's caller, one call turned into a tool result, progress.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mcp.server import MCPServer
from mcp.server.apps import client_supports_apps
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import (
    CallToolResult,
    InputRequiredResult,
    ListResourcesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ToolAnnotations,
)
from pydantic import ValidationError

from hailuo_mcp.branding import server_icons
from hailuo_mcp.callers import caller_of
from hailuo_mcp.errors import HailuoError, InputError
from hailuo_mcp.models import TaskStatus, validation_message
from hailuo_mcp.progress import Progress, reporting, silent
from hailuo_mcp.results import VideoResult
from hailuo_mcp.runtime import Runtime
from hailuo_mcp.task_resource import read_video_resource, served_path
from hailuo_mcp.tool_results import error_result, listing_meta, video_answer, video_uri

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from hailuo_mcp.flow import VideoService

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# resources/list shows the caller's newest saved videos, at most this many.
_LISTED_VIDEOS = 50


async def answer_call(
    runtime: Runtime, call: Callable[[VideoService], Awaitable[VideoResult]], ctx: Context
) -> CallToolResult:
    """Run one service call, as the request's caller, and turn its result or error into a
    tool result."""
    try:
        result = await call(service_for(runtime, ctx))
    except HailuoError as exc:
        return await error_result(exc, runtime, video_schema=True)
    try:
        return await video_answer(
            result, for_player=client_supports_apps(ctx), posters=runtime.posters
        )
    except Exception as exc:
        # Building the answer comes after a create too: it must not lose the id
        # (invariant 3 in docs/ARCHITECTURE.md).
        logger.exception("task %s: could not build the answer", result.task_id)
        error = HailuoError(
            f"The task is recorded but its answer could not be built ({type(exc).__name__}); "
            "call get_task to check it.",
            task_id=result.task_id,
        )
        return await error_result(error, runtime, video_schema=True)


def service_for(runtime: Runtime, ctx: Any) -> VideoService:
    """The service answering this tool call's caller (its tasks only, paid with its key)."""
    return runtime.service.for_caller(caller_of(ctx.request_context))


@contextmanager
def progress_for(ctx: Context, runtime: Runtime) -> Iterator[Progress]:
    """This call's progress, sent by the server's clock (none if the runtime did not open)."""
    if runtime.progress_clock is None:
        yield silent()
        return
    interval = runtime.settings.progress_interval
    with reporting(runtime.progress_clock, ctx.report_progress, interval=interval) as progress:
        yield progress


def tool_registrar(
    mcp: MCPServer[Runtime], meta: dict[str, Any] | None = None
) -> Callable[[str, ToolAnnotations], Callable[[F], F]]:
    """A decorator factory registering a tool whose description is its cleaned docstring."""

    def tool(title: str, annotations: ToolAnnotations) -> Callable[[F], F]:
        def register(fn: F) -> F:
            description = inspect.cleandoc(fn.__doc__ or "")
            mcp.tool(
                title=title,
                description=description,
                annotations=annotations,
                icons=server_icons(),
                meta=meta,
            )(fn)
            return fn

        return register

    return tool


class HailuoServer(MCPServer[Runtime]):
    """MCPServer with our error format for argument errors, and the saved videos listed."""

    # The lifespan's runtime while the server runs (the HTTP app's webhook route reads it).
    runtime: Runtime | None = None

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Runtime, Any] | None = None
    ) -> Any:
        """Call a tool; arguments the SDK refuses get the same answer as ours."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                error = InputError(validation_message(exc.__cause__))
                return await error_result(error, None)
            raise

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[Runtime], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        listed = await super()._handle_list_resources(ctx, params)
        runtime = ctx.lifespan_context
        if not isinstance(runtime, Runtime):
            return listed
        try:
            service = runtime.service.for_caller(caller_of(ctx))
            rows = await service.recent(_LISTED_VIDEOS, TaskStatus.COMPLETED)
        except HailuoError:
            return listed
        videos = []
        for row in rows:
            # Listed only where a read would serve them (task_resource.py's one rule).
            path = Path(row.video_path) if row.video_path else None
            if path is None or served_path(runtime, path) is None:
                continue
            videos.append(
                Resource(
                    uri=video_uri(row.task_id),
                    name=path.name,
                    title=(row.prompt or "")[:80] or None,
                    description=f"Hailuo video of task {row.task_id}, saved at {path}",
                    mime_type="video/mp4",
                    size=path.stat().st_size,
                    _meta=await listing_meta(path),
                )
            )
        return ListResourcesResult(resources=[*listed.resources, *videos])

    async def _handle_read_resource(
        self, ctx: ServerRequestContext[Runtime], params: ReadResourceRequestParams
    ) -> ReadResourceResult | InputRequiredResult:
        # Saved videos and their parts are encoded from disk (task_resource.py), not through
        # the SDK's bytes -> base64 copies; every other URI is the SDK's.
        streamed = await read_video_resource(ctx, params.uri)
        if streamed is not None:
            return streamed
        return await super()._handle_read_resource(ctx, params)
