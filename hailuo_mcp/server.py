"""build_server(settings) -> MCPServer: the lifespan and four thin tools."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import (
    CallToolResult,
    ContentBlock,
    ResourceLink,
    TextContent,
    ToolAnnotations,
)
from pydantic import Field, ValidationError

from hailuo_mcp import __version__
from hailuo_mcp.config import Settings
from hailuo_mcp.errors import HailuoError, InputError
from hailuo_mcp.models import (
    PROMPT_MAX_CHARS,
    TASK_ID_PATTERN,
    Duration,
    Resolution,
    TaskStatus,
    Variant,
    VideoRequest,
)
from hailuo_mcp.pricing import Estimate, estimate
from hailuo_mcp.results import ErrorInfo, TaskList, TaskSummary, VideoResult
from hailuo_mcp.runtime import Runtime

if TYPE_CHECKING:
    from hailuo_mcp.flow import VideoService

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
Makes short videos with MiniMax Hailuo (through PiAPI) and saves them as MP4 files.
generate_video checks the request, creates a paid task, waits for it (about 80 s) and returns
the saved file. If it returns before the video is ready, it gives a task_id: call get_task with
it later. estimate_cost prices a request first; list_tasks shows recent tasks."""

StatusFilter = Literal["pending", "processing", "completed", "failed"]


def _validation_message(exc: ValidationError) -> str:
    """One line per broken rule, naming the field; never echoes the (possibly huge) input."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(x) for x in error["loc"]) or "request"
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field not in message else message)
    return "; ".join(parts)


async def _error_result(exc: HailuoError, runtime: Runtime) -> CallToolResult:
    """An isError result an assistant can act on, with the task id whenever one exists."""
    info = ErrorInfo(error_kind=exc.kind, message=exc.message, task_id=exc.task_id)
    text = exc.message
    if exc.task_id:
        text = f"{exc.message} (task_id: {exc.task_id})"
        try:
            record = await (await runtime.service()).ledger.get(exc.task_id)
        except HailuoError:
            record = None
        if record is not None:
            info.status = record.status.value
            info.video_url = record.video_url
            info.video_path = record.video_path
    logger.info("tool error (%s): %s", exc.kind, text)
    return CallToolResult(
        is_error=True,
        content=[TextContent(type="text", text=text)],
        structured_content=info.model_dump(mode="json", exclude_none=True),
    )


def _video_result(result: VideoResult) -> CallToolResult:
    """A result with a summary, the structured fields and a link to the saved file."""
    if result.video_path:
        text = f"Video saved to {result.video_path} (task_id: {result.task_id})."
    else:
        text = f"Task {result.task_id} is {result.status.value}. {result.next_step}"
    if result.warnings:
        text = " ".join([text, *result.warnings])
    content: list[ContentBlock] = [TextContent(type="text", text=text)]
    if result.video_path:
        path = Path(result.video_path)
        content.append(
            ResourceLink(
                type="resource_link",
                uri=path.as_uri(),
                name=path.name,
                mime_type="video/mp4",
                size=path.stat().st_size if path.is_file() else None,
            )
        )
    return CallToolResult(content=content, structured_content=result.model_dump(mode="json"))


async def _answer(
    runtime: Runtime, call: Callable[[VideoService], Awaitable[VideoResult]]
) -> CallToolResult:
    """Run one service call and turn its result, or its error, into a tool result."""
    try:
        result = await call(await runtime.service())
    except HailuoError as exc:
        return await _error_result(exc, runtime)
    return _video_result(result)


ProgressFn = Callable[[float, float | None, str], Awaitable[None]]


def _progress_reporter(ctx: Context) -> ProgressFn:
    async def report(progress: float, total: float | None, message: str) -> None:
        try:
            await ctx.report_progress(progress, total, message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # The client went away: the flow carries on and the ledger keeps the task.
            pass

    return report


def build_server(settings: Settings) -> MCPServer[Runtime]:
    """The hailuo-mcp server for these settings (nothing opened until it runs)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Runtime]) -> AsyncIterator[Runtime]:
        async with Runtime(settings) as runtime:
            yield runtime

    mcp: MCPServer[Runtime] = MCPServer(
        "hailuo-mcp",
        title="Hailuo video (PiAPI)",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
    )

    def runtime_of(ctx: Context) -> Runtime:
        runtime = ctx.request_context.lifespan_context
        assert isinstance(runtime, Runtime)
        return runtime

    @mcp.tool(
        title="Generate a Hailuo video",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    async def generate_video(
        prompt: Annotated[
            str,
            Field(
                min_length=1,
                max_length=PROMPT_MAX_CHARS,
                description="What the video shows (at most 2000 characters).",
            ),
        ],
        ctx: Context,
        model: Annotated[
            Variant,
            Field(description="v2.3 (text or image to video) or v2.3-fast (image to video only)."),
        ] = "v2.3",
        image_url: Annotated[
            str | None,
            Field(
                description="Optional first frame: a JPG or PNG, 300-4096 px a side, aspect "
                "ratio between 2:5 and 5:2, at most 20 MB; checked before anything is paid. "
                "Either an http(s) URL or the absolute path (or file:// URI) of a local file in "
                "a folder the server may read (HAILUO_IMAGE_DIRS, default: the home folder), "
                "uploaded to PiAPI (at most 10 MB). Required for v2.3-fast.",
            ),
        ] = None,
        duration: Annotated[Duration, Field(description="Seconds of video: 6 or 10.")] = 6,
        resolution: Annotated[
            Resolution, Field(description="768 or 1080 (1080 only with duration 6).")
        ] = 768,
        expand_prompt: Annotated[
            bool | None,
            Field(
                description="Let Hailuo enrich the prompt (default: on, or the server's "
                "HAILUO_EXPAND_PROMPT_DEFAULT)."
            ),
        ] = None,
        wait_seconds: Annotated[
            float | None,
            Field(
                ge=0,
                le=3600,
                description="How long to wait for the video before returning the task_id "
                "(default: the server's HAILUO_WAIT_SECONDS, 50).",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, VideoResult]:
        """Generate a video with MiniMax Hailuo and save it as an MP4 on this machine.

        Costs money (see estimate_cost): USD 0.16 to 0.46 per video, charged only on success.
        Takes about 80 s. If the video is not ready within wait_seconds, the result has
        done=false and a task_id: call get_task with it to finish and save the video.
        """
        runtime = runtime_of(ctx)
        try:
            request = VideoRequest(
                prompt=prompt,
                model=model,
                image_url=image_url,
                duration=duration,
                resolution=resolution,
                expand_prompt=(
                    settings.expand_prompt_default if expand_prompt is None else expand_prompt
                ),
            )
        except ValidationError as exc:
            return await _error_result(InputError(_validation_message(exc)), runtime)
        return await _answer(
            runtime,
            lambda service: service.generate(
                request, wait_seconds=wait_seconds, progress=_progress_reporter(ctx)
            ),
        )

    @mcp.tool(
        title="Check a Hailuo task",
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def get_task(
        task_id: Annotated[
            str,
            Field(
                pattern=TASK_ID_PATTERN,
                description="The task_id from generate_video (or any PiAPI Hailuo task).",
            ),
        ],
        ctx: Context,
        wait_seconds: Annotated[
            float,
            Field(ge=0, le=3600, description="Wait up to this long for the task to finish."),
        ] = 0,
    ) -> Annotated[CallToolResult, VideoResult]:
        """Get a Hailuo task's status; saves the video the first time it is seen completed.

        Works for tasks created elsewhere too. With wait_seconds > 0 it keeps checking (with
        progress) until the task ends or the time is up.
        """
        runtime = runtime_of(ctx)
        return await _answer(
            runtime,
            lambda service: service.lookup(
                task_id, wait_seconds=wait_seconds, progress=_progress_reporter(ctx)
            ),
        )

    @mcp.tool(
        title="Estimate a Hailuo video's cost",
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def estimate_cost(
        model: Annotated[Variant, Field(description="v2.3 or v2.3-fast.")] = "v2.3",
        duration: Annotated[Duration, Field(description="6 or 10 seconds.")] = 6,
        resolution: Annotated[Resolution, Field(description="768 or 1080.")] = 768,
    ) -> Estimate:
        """Price one generation from PiAPI's Hailuo price table (USD and PiAPI points).

        Needs no API key. Charged only when a task completes successfully.
        """
        try:
            return estimate(model, duration, resolution, points_per_usd=settings.points_per_usd)
        except InputError as exc:
            raise ToolError(exc.message) from None

    @mcp.tool(
        title="List recent Hailuo tasks",
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def list_tasks(
        ctx: Context,
        limit: Annotated[
            int, Field(ge=1, le=200, description="How many tasks, newest first.")
        ] = 20,
        status: Annotated[
            StatusFilter | None, Field(description="Only tasks with this status.")
        ] = None,
    ) -> Annotated[CallToolResult, TaskList]:
        """List recent tasks from this machine's ledger, newest first (no upstream call)."""
        runtime = runtime_of(ctx)
        try:
            service = await runtime.service()
            rows = await service.recent(limit, TaskStatus(status) if status else None)
        except HailuoError as exc:
            return await _error_result(exc, runtime)
        tasks = [
            TaskSummary(
                task_id=row.task_id,
                status=row.status,
                created_at=row.created_iso,
                prompt=row.prompt,
                model=row.model,
                duration=row.duration,
                resolution=row.resolution,
                cost_usd=row.estimate_usd,
                video_path=row.video_path,
                video_url=row.video_url,
                error=row.error_message,
            )
            for row in rows
        ]
        listing = TaskList(tasks=tasks, count=len(tasks))
        lines = [f"{t.created_at} {t.task_id} {t.status.value}" for t in tasks] or ["no tasks"]
        return CallToolResult(
            content=[TextContent(type="text", text="\n".join(lines))],
            structured_content=listing.model_dump(mode="json"),
        )

    return mcp
