"""Tool results as every client reads them: the whole answer in text, structuredContent valid
against the tool's outputSchema, a link to the saved video, and errors in one format."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent

from hailuo_mcp.digests import sha256_of
from hailuo_mcp.errors import HailuoError
from hailuo_mcp.ledger import TaskRecord
from hailuo_mcp.models import TaskStatus
from hailuo_mcp.player import player_hints
from hailuo_mcp.poster import Poster
from hailuo_mcp.poster_jobs import PosterMaker
from hailuo_mcp.results import TaskSummary, VideoResult
from hailuo_mcp.runtime import Runtime
from hailuo_mcp.spending import SpendingSummary

logger = logging.getLogger(__name__)

# Where a machine reads an error's kind and task id (the model reads the text).
ERROR_META_KEY = "io.github.hailuo-mcp/error"
# Saved videos as resources: the URI a result's resource_link gives.
VIDEO_URI = "hailuo://videos/{task_id}.mp4"
# A listed video's SHA-256 (resources/list `_meta`); the poster frame's path and time.
SHA256_META_KEY = "io.github.hailuo-mcp/sha256"
POSTER_META_KEY = "io.github.hailuo-mcp/poster"
# Said when the answer could not wait for its poster (poster_jobs.py).
POSTER_PENDING = "Its poster frame is still being made: get_task with this task_id attaches it."


def video_uri(task_id: str) -> str:
    """The resource URI of a task's saved video."""
    return VIDEO_URI.format(task_id=task_id)


def _error_text(exc: HailuoError) -> str:
    text = f"Error ({exc.kind}): {exc.message}"
    if exc.task_id and exc.task_id not in exc.message:
        text += f" (task_id: {exc.task_id})"
    return text


async def error_result(
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
            (await task_state(exc.task_id, runtime))
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


async def task_state(task_id: str, runtime: Runtime | None) -> VideoResult:
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


async def video_answer(
    result: VideoResult, *, for_player: bool, posters: PosterMaker | None
) -> CallToolResult:
    """`video_result` with the poster frame, and the player's hints for a client with Apps.

    The poster is made once per video by `posters` (at most two at once, waited for within a
    budget: poster_jobs.py); none without the preview extra, or without `posters`. A client
    without MCP Apps gets no player hints, so its result is as before the player.
    """
    poster: Poster | None = None
    pending = False
    hints: dict[str, Any] | None = None
    if result.video_path and result.task_id:
        path = Path(result.video_path)
        if posters is not None:
            poster, pending = await posters.poster(path)
        if for_player:
            try:
                size, digest = path.stat().st_size, await sha256_of(path)
            except OSError:
                pass  # moved or deleted since it was saved: the result says where it was
            else:
                hints = player_hints(result.task_id, video_uri(result.task_id), size, digest)
    return video_result(result, poster=poster, hints=hints, poster_pending=pending)


def _poster_text(poster: Poster) -> str:
    at = f" at {poster.at_seconds:.1f} s" if poster.at_seconds is not None else ""
    return (
        f"Attached: one frame of the video{at} ({poster.width}x{poster.height}, also saved at "
        f"{poster.path}); look at it to check that the video matches the prompt."
    )


def video_result(
    result: VideoResult,
    *,
    poster: Poster | None = None,
    hints: dict[str, Any] | None = None,
    poster_pending: bool = False,
) -> CallToolResult:
    """A result with the whole answer in text, the structured fields and a link to the file.

    With a poster, its frame as image content and its path; `hints` become the result's `_meta`.
    """
    text = _video_text(result)
    if poster is not None:
        text = f"{text} {_poster_text(poster)}"
    elif poster_pending:
        text = f"{text} {POSTER_PENDING}"
    content: list[ContentBlock] = [TextContent(type="text", text=text)]
    if result.video_path and result.task_id:
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
    if poster is not None:
        content.append(
            ImageContent(
                type="image",
                data=base64.b64encode(poster.jpeg).decode("ascii"),
                mime_type="image/jpeg",
                _meta={
                    POSTER_META_KEY: {"path": str(poster.path), "at_seconds": poster.at_seconds}
                },
            )
        )
    return CallToolResult(
        content=content, structured_content=result.model_dump(mode="json"), _meta=hints
    )


async def listing_meta(path: Path) -> dict[str, Any] | None:
    """A listed video's `_meta`: its SHA-256 (None if it cannot be read now)."""
    try:
        return {SHA256_META_KEY: await sha256_of(path)}
    except OSError:
        return None


def summary(result: VideoResult, row: TaskRecord) -> TaskSummary:
    """One task as list_tasks shows it (cost and charge from its answer)."""
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


def listing_text(tasks: list[TaskSummary]) -> str:
    """list_tasks in words: one line per task with its cost and file."""
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


def spending_text(summary: SpendingSummary) -> str:
    """spending_summary in words."""
    lines = []
    for name, period in (
        ("Today", summary.today),
        ("This month", summary.this_month),
        ("All time", summary.all_time),
    ):
        line = f"{name}: ${period.spent_usd:.2f} for {period.completed} video(s)"
        if period.in_flight:
            line += f", ${period.in_flight_usd:.2f} in {period.in_flight} task(s) still running"
        models = ", ".join(
            f"{m.model} ${m.spent_usd:.2f} ({m.completed})" for m in period.by_model if m.completed
        )
        lines.append(line + (f" [{models}]" if models else "") + ".")
    caps = ", ".join(f"{k}={v:g}" for k, v in summary.caps.items() if v is not None)
    lines.append(f"Caps: {caps}." if caps else "No spending caps are set.")
    return "\n".join(lines)
