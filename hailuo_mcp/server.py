"""build_server(settings) -> HailuoServer: the lifespan, the thin tools and the saved videos."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from mcp.types import (
    CallToolResult,
    TextContent,
    ToolAnnotations,
)
from pydantic import Field

from hailuo_mcp import __version__
from hailuo_mcp.branding import WEBSITE_URL, server_icons
from hailuo_mcp.config import Settings
from hailuo_mcp.confirmation import (
    SpendConfirmation,
    confirm_spend,
    unconfirmed_answer,
)
from hailuo_mcp.cost_tools import register_cost_tools
from hailuo_mcp.errors import HailuoError, InputError
from hailuo_mcp.hailuo_server import (
    HailuoServer,
    answer_call,
    progress_for,
    service_for,
    tool_registrar,
)
from hailuo_mcp.mcp_tasks import TasksExtension
from hailuo_mcp.models import (
    PROMPT_MAX_CHARS,
    TASK_ID_PATTERN,
    Duration,
    Resolution,
    TaskStatus,
    Variant,
)
from hailuo_mcp.player import PLAYER_TOOL_META, build_apps
from hailuo_mcp.prepare import build_request
from hailuo_mcp.pricing import Estimate, estimate
from hailuo_mcp.prompts import register_prompts
from hailuo_mcp.results import TaskList, VideoResult
from hailuo_mcp.runtime import Runtime, open_runtime, runtime_of
from hailuo_mcp.spending import wall_clock
from hailuo_mcp.task_resource import register_task_resource
from hailuo_mcp.tool_results import (
    error_result,
    listing_text,
    summary,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
Makes short videos with MiniMax Hailuo (through PiAPI) and saves them as MP4 files.
generate_video checks the request, creates a paid task, waits for it (about 80 s) and returns
the saved file. If it returns before the video is ready, it gives a task_id: call get_task with
it later. estimate_cost prices a request first; list_tasks shows recent tasks."""

StatusFilter = Literal["pending", "processing", "completed", "failed"]
F = TypeVar("F", bound=Callable[..., Any])


def build_server(
    settings: Settings,
    *,
    listen_for_webhooks: bool = True,
    clock: Callable[[], float] = wall_clock,
) -> HailuoServer:
    """The hailuo-mcp server for these settings (nothing opened until it runs).

    `listen_for_webhooks=False` when the receiver is a route of the server's own HTTP app.
    """

    @asynccontextmanager
    async def lifespan(server: MCPServer[Runtime]) -> AsyncIterator[Runtime]:
        async with open_runtime(
            settings, listen_for_webhooks=listen_for_webhooks, clock=clock
        ) as runtime:
            mcp.runtime = runtime
            try:
                yield runtime
            finally:
                mcp.runtime = None

    # MCP Tasks: the 2026 extension, and the 2025-11-25 tasks through its middleware.
    # MCP Apps: the inline player (player.py).
    tasks = TasksExtension()
    mcp = HailuoServer(
        "hailuo-mcp",
        title="Hailuo video (PiAPI)",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url=WEBSITE_URL,
        icons=server_icons(),
        lifespan=lifespan,
        extensions=[tasks, build_apps()],
    )
    mcp.middleware.append(tasks.middleware)

    tool = tool_registrar(mcp)
    # generate_video and get_task: hosts with MCP Apps show their results in the player.
    player_tool = tool_registrar(mcp, PLAYER_TOOL_META)

    @player_tool(
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
        # Filled by the resolver before the body runs: the user's answer, or no question.
        confirmation: Annotated[ElicitationResult[SpendConfirmation], Resolve(confirm_spend)],
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
        filename: Annotated[
            str | None,
            Field(
                description="Optional name for the saved MP4 (a plain name: folders and unsafe "
                "characters are removed; a name already taken gets a suffix). Default: the "
                "date, words of the prompt and a short id.",
            ),
        ] = None,
        allow_duplicate: Annotated[
            bool,
            Field(
                description="Pay for a new video even if the very same request was made in "
                "the last 10 minutes (by default that task is returned instead)."
            ),
        ] = False,
    ) -> Annotated[CallToolResult, VideoResult]:
        """Generate a video with MiniMax Hailuo and save it as an MP4 on this machine.

        Costs money (see estimate_cost): USD 0.16 to 0.45 per video, charged only on success.
        Takes about 80 s. If the video is not ready within wait_seconds, the result has
        done=false and a task_id: call get_task with it to finish. The task cannot be stopped
        once created: if this call is cancelled, the client stops waiting or cancels the MCP
        task, the server keeps following the task and still saves the video (it is charged);
        get_task with the task_id returns it.
        Repeating the same request within 10 minutes returns the earlier task (no new charge).
        Above the server's confirmation threshold the user is asked first.
        Once the video is saved, the result includes one frame of it as an image (when the
        server has the preview extra): look at it to check that the video matches the prompt
        before telling the user it is done.
        """
        runtime = runtime_of(ctx)
        refused = await unconfirmed_answer(confirmation, runtime)
        if refused is not None:
            return refused
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
            return await error_result(exc, runtime)
        with progress_for(ctx, runtime) as progress:
            return await answer_call(
                runtime,
                lambda service: service.generate(
                    request,
                    wait_seconds=wait_seconds,
                    progress=progress,
                    allow_duplicate=allow_duplicate,
                    file_name=filename,
                ),
                ctx,
            )

    @player_tool(
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
        refresh_url: Annotated[
            bool,
            Field(
                description="Ask PiAPI again for a fresh video_url (its URLs expire), even when "
                "the video is already saved here."
            ),
        ] = False,
    ) -> Annotated[CallToolResult, VideoResult]:
        """Get a Hailuo task's status; saves the video the first time it is seen completed.

        Works for tasks created elsewhere too. With wait_seconds > 0 it keeps checking (with
        progress) until the task ends or the time is up.
        """
        runtime = runtime_of(ctx)
        with progress_for(ctx, runtime) as progress:
            return await answer_call(
                runtime,
                lambda service: service.lookup(
                    task_id, wait_seconds=wait_seconds, progress=progress, refresh_url=refresh_url
                ),
                ctx,
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
            return await error_result(exc, None)
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
            service = service_for(runtime, ctx)
            rows = await service.recent(limit, TaskStatus(status) if status else None)
            tasks = [summary(service.result_from_record(row), row) for row in rows]
        except HailuoError as exc:
            return await error_result(exc, runtime)
        listing = TaskList(tasks=tasks, count=len(tasks))
        return CallToolResult(
            content=[TextContent(type="text", text=listing_text(tasks))],
            structured_content=listing.model_dump(mode="json"),
        )

    register_cost_tools(mcp, tool)
    register_prompts(mcp)
    # The task, saved-video and video-part resources (task_resource.py).
    register_task_resource(mcp)

    return mcp
