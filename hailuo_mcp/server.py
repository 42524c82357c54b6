"""build_server(settings) -> MCPServer: the lifespan, four thin tools and the saved videos."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import (
    CallToolResult,
    ContentBlock,
    ListResourcesResult,
    PaginatedRequestParams,
    Resource,
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
    is_valid_task_id,
    validation_message,
)
from hailuo_mcp.prepare import build_request
from hailuo_mcp.pricing import Estimate, estimate
from hailuo_mcp.progress import Progress, reporting
from hailuo_mcp.results import TaskList, TaskSummary, VideoResult
from hailuo_mcp.runtime import Runtime, open_runtime

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from hailuo_mcp.flow import VideoService

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
Makes short videos with MiniMax Hailuo (through PiAPI) and saves them as MP4 files.
generate_video checks the request, creates a paid task, waits for it (about 80 s) and returns
the saved file. If it returns before the video is ready, it gives a task_id: call get_task with
it later. estimate_cost prices a request first; list_tasks shows recent tasks."""

StatusFilter = Literal["pending", "processing", "completed", "failed"]
F = TypeVar("F", bound=Callable[..., Any])

# Where a machine reads an error's kind and task id (the model reads the text).
ERROR_META_KEY = "io.github.hailuo-mcp/error"
# Saved videos as resources: the URI a result's resource_link gives.
VIDEO_URI = "hailuo://videos/{task_id}.mp4"
_LISTED_VIDEOS = 50


def video_uri(task_id: str) -> str:
    """The resource URI of a task's saved video."""
    return VIDEO_URI.format(task_id=task_id)


def _error_text(exc: HailuoError) -> str:
    text = f"Error ({exc.kind}): {exc.message}"
    if exc.task_id and exc.task_id not in exc.message:
        text += f" (task_id: {exc.task_id})"
    return text


async def _error_result(
    exc: HailuoError, runtime: Runtime | None, *, video_schema: bool = False
) -> CallToolResult:
    """An isError result every client accepts, with the task id whenever one exists.

    The TypeScript SDK validates structuredContent against the tool's outputSchema even on an
    error, and throws the result away if it does not match: structuredContent is only sent
    when it is a valid VideoResult (a task exists). The text says it all, for models that see
    only text; `_meta` carries the kind and task id for programs.
    """
    logger.info("tool error (%s): %s", exc.kind, _error_text(exc))
    structured: dict[str, Any] | None = None
    if exc.task_id and video_schema:
        structured = (
            (await _task_state(exc.task_id, runtime))
            .model_copy(update={"error_kind": exc.kind, "error_message": exc.message})
            .model_dump(mode="json")
        )
    meta = {"error_kind": exc.kind, "message": exc.message}
    if exc.task_id:
        meta["task_id"] = exc.task_id
    return CallToolResult(
        is_error=True,
        content=[TextContent(type="text", text=_error_text(exc))],
        structured_content=structured,
        _meta={ERROR_META_KEY: meta},
    )


async def _task_state(task_id: str, runtime: Runtime | None) -> VideoResult:
    """What the ledger knows of a task, for an error result about it."""
    try:
        if runtime is not None:
            service = runtime.service
            record = await service.ledger.get(task_id)
            if record is not None:
                return service.result_from_record(record, waited=0.0)
    except HailuoError:
        pass  # the error being answered matters more than the ledger's view of it
    return VideoResult(
        task_id=task_id,
        status=TaskStatus.UNKNOWN,
        done=False,
        next_step=f"Call get_task with task_id={task_id} to check it.",
    )


def _money(result: VideoResult) -> str:
    if result.emulated:
        return "emulated, nothing charged"
    if result.cost_usd is None:
        return "cost unknown"
    return f"${result.cost_usd:.2f} charged" if result.charged else f"${result.cost_usd:.2f}"


def _video_text(result: VideoResult) -> str:
    """The whole answer in words: many clients hand only the text to the model."""
    if result.video_path:
        what = " · ".join(
            part
            for part in (
                result.model,
                f"{result.duration} s" if result.duration else None,
                f"{result.resolution}p" if result.resolution else None,
            )
            if part
        )
        took = (
            f"generated in {result.generation_seconds:.0f} s"
            if result.generation_seconds is not None
            else None
        )
        details = ", ".join(p for p in (what, _money(result), took) if p)
        text = f"Video saved to {result.video_path} ({details}). task_id: {result.task_id}."
    else:
        text = f"Task {result.task_id} is {result.status.value}. {result.next_step}"
    return " ".join([text, *result.warnings])


def _video_result(result: VideoResult) -> CallToolResult:
    """A result with the whole answer in text, the structured fields and a link to the file."""
    content: list[ContentBlock] = [TextContent(type="text", text=_video_text(result))]
    if result.video_path:
        path = Path(result.video_path)
        content.append(
            ResourceLink(
                type="resource_link",
                uri=video_uri(result.task_id),
                name=path.name,
                description=f"The saved video, at {path} on the server's machine",
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
        result = await call(runtime.service)
    except HailuoError as exc:
        return await _error_result(exc, runtime, video_schema=True)
    try:
        return _video_result(result)
    except Exception as exc:
        # Building the answer comes after a create too: it must not lose the id (invariant 3).
        logger.exception("task %s: could not build the answer", result.task_id)
        error = HailuoError(
            f"The task is recorded but its answer could not be built ({type(exc).__name__}); "
            "call get_task to check it.",
            task_id=result.task_id,
        )
        return await _error_result(error, runtime, video_schema=True)


@asynccontextmanager
async def _progress(ctx: Context, settings: Settings) -> AsyncIterator[Progress]:
    async with reporting(ctx.report_progress, interval=settings.progress_interval) as progress:
        yield progress


class HailuoServer(MCPServer[Runtime]):
    """MCPServer with our error format for argument errors, and the saved videos listed."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Runtime, Any] | None = None
    ) -> Any:
        """Call a tool; arguments the SDK refuses get the same answer as ours."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                error = InputError(validation_message(exc.__cause__))
                return await _error_result(error, None)
            raise

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[Runtime], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        listed = await super()._handle_list_resources(ctx, params)
        runtime = ctx.lifespan_context
        if not isinstance(runtime, Runtime):
            return listed
        try:
            rows = await runtime.service.recent(_LISTED_VIDEOS, TaskStatus.COMPLETED)
        except HailuoError:
            return listed
        videos = []
        for row in rows:
            path = Path(row.video_path) if row.video_path else None
            if path is None or not path.is_file():
                continue
            videos.append(
                Resource(
                    uri=video_uri(row.task_id),
                    name=path.name,
                    title=(row.prompt or "")[:80] or None,
                    description=f"Hailuo video of task {row.task_id}, saved at {path}",
                    mime_type="video/mp4",
                    size=path.stat().st_size,
                )
            )
        return ListResourcesResult(resources=[*listed.resources, *videos])


def build_server(settings: Settings) -> MCPServer[Runtime]:
    """The hailuo-mcp server for these settings (nothing opened until it runs)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Runtime]) -> AsyncIterator[Runtime]:
        async with open_runtime(settings) as runtime:
            yield runtime

    mcp = HailuoServer(
        "hailuo-mcp",
        title="Hailuo video (PiAPI)",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
    )

    def tool(title: str, annotations: ToolAnnotations) -> Callable[[F], F]:
        """Register a tool; its description is its docstring without the source's indent."""

        def register(fn: F) -> F:
            description = inspect.cleandoc(fn.__doc__ or "")
            mcp.tool(title=title, description=description, annotations=annotations)(fn)
            return fn

        return register

    def runtime_of(ctx: Context) -> Runtime:
        runtime = ctx.request_context.lifespan_context
        assert isinstance(runtime, Runtime)
        return runtime

    @tool(
        "Generate a Hailuo video",
        ToolAnnotations(
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

        Costs money (see estimate_cost): USD 0.16 to 0.45 per video, charged only on success.
        Takes about 80 s. If the video is not ready within wait_seconds, the result has
        done=false and a task_id: call get_task with it to finish. The task cannot be stopped
        once created: if this call is cancelled or the client stops waiting, the server keeps
        following the task and still saves the video; get_task with the task_id returns it.
        """
        runtime = runtime_of(ctx)
        try:
            request = build_request(
                prompt=prompt,
                model=model,
                image_url=image_url,
                duration=duration,
                resolution=resolution,
                expand_prompt=expand_prompt,
                settings=settings,
            )
        except InputError as exc:
            return await _error_result(exc, runtime)
        async with _progress(ctx, settings) as progress:
            return await _answer(
                runtime,
                lambda service: service.generate(
                    request, wait_seconds=wait_seconds, progress=progress
                ),
            )

    @tool(
        "Check a Hailuo task",
        # Not read-only: the first look at a completed task downloads and saves its video.
        ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
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
        async with _progress(ctx, settings) as progress:
            return await _answer(
                runtime,
                lambda service: service.lookup(
                    task_id, wait_seconds=wait_seconds, progress=progress
                ),
            )

    @tool(
        "Estimate a Hailuo video's cost",
        ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def estimate_cost(
        model: Annotated[Variant, Field(description="v2.3 or v2.3-fast.")] = "v2.3",
        duration: Annotated[Duration, Field(description="6 or 10 seconds.")] = 6,
        resolution: Annotated[Resolution, Field(description="768 or 1080.")] = 768,
    ) -> Annotated[CallToolResult, Estimate]:
        """Price one generation from PiAPI's Hailuo price table (USD and PiAPI points).

        Needs no API key. Charged only when a task completes successfully.
        """
        try:
            settings.check(["HAILUO_POINTS_PER_USD"])
            price = estimate(model, duration, resolution, points_per_usd=settings.points_per_usd)
        except HailuoError as exc:
            return await _error_result(exc, None)
        text = (
            f"{model} · {duration} s · {resolution}p costs ${price.usd:.2f} "
            f"({price.points:,} PiAPI points), charged on successful completion only."
        )
        return CallToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content=price.model_dump(mode="json"),
        )

    @tool(
        "List recent Hailuo tasks",
        ToolAnnotations(
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
            settings.check(["HAILUO_STATE_DIR", "HAILUO_POINTS_PER_USD"])
            service = runtime.service
            rows = await service.recent(limit, TaskStatus(status) if status else None)
            tasks = [_summary(service, row) for row in rows]
        except HailuoError as exc:
            return await _error_result(exc, runtime)
        listing = TaskList(tasks=tasks, count=len(tasks))
        return CallToolResult(
            content=[TextContent(type="text", text=_listing_text(tasks))],
            structured_content=listing.model_dump(mode="json"),
        )

    @mcp.resource(
        VIDEO_URI,
        name="saved_video",
        title="A saved Hailuo video",
        description="The MP4 a task saved on the server's machine (listed in resources/list).",
        mime_type="video/mp4",
    )
    async def saved_video(task_id: str, ctx: Context) -> bytes:
        """The bytes of a task's saved video."""
        if not is_valid_task_id(task_id):
            raise ResourceError("not a task id")
        try:
            record = await runtime_of(ctx).service.ledger.get(task_id)
        except HailuoError as exc:
            raise ResourceError(exc.message) from exc
        if record is None or not record.video_path:
            raise ResourceError(f"task {task_id} has no saved video (yet): call get_task")
        path = Path(record.video_path)
        try:
            return await anyio.Path(path).read_bytes()
        except OSError as exc:
            raise ResourceError(
                f"the video of task {task_id} is no longer at {path} ({exc.strerror})"
            ) from exc

    return mcp


def _summary(service: VideoService, row: Any) -> TaskSummary:
    result = service.result_from_record(row, waited=0.0)
    return TaskSummary(
        task_id=row.task_id,
        status=row.status,
        created_at=row.created_iso,
        prompt=row.prompt,
        model=row.model,
        duration=row.duration,
        resolution=row.resolution,
        cost_usd=result.cost_usd,
        charged=result.charged,
        video_path=row.video_path,
        video_url=row.video_url,
        error=row.error_message,
    )


def _listing_text(tasks: list[TaskSummary]) -> str:
    if not tasks:
        return "No tasks yet."
    lines = [f"{len(tasks)} task(s), newest first:"]
    for t in tasks:
        what = " · ".join(
            str(p) for p in (t.model, f"{t.duration} s" if t.duration else None, t.resolution) if p
        )
        cost = f"${t.cost_usd:.2f}{' charged' if t.charged else ''}" if t.cost_usd else ""
        where = t.video_path or (f"error: {t.error}" if t.error else "")
        lines.append(
            " | ".join(p for p in (t.created_at, t.task_id, t.status.value, what, cost, where) if p)
        )
    return "\n".join(lines)
