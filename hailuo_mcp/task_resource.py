"""Tasks and their saved videos as resources, read from the local ledger and the output folder.

- ``hailuo://tasks/{task_id}``: a task's JSON. Reading it makes no upstream call and changes
  nothing (get_task is the tool that asks PiAPI); it is what the ledger knows now, in the same
  fields as get_task's structured result, with the saved video's URI, size, SHA-256 and parts.
- ``hailuo://videos/{task_id}.mp4``: the saved MP4, one base64 blob encoded straight from disk.
- ``hailuo://videos/{task_id}.mp4/parts/{index}``: one `PART_BYTES` part of it, with its
  place in the file and its SHA-256 in `_meta`; the player reads these one after another.

Every read looks the task up through `_task_record`, and a video is served only from a file
inside the output folder (HAILUO_OUTPUT_DIR) that the ledger says is the task's. The SDK turns a
resource function's bytes into a second, base64 copy (and a third as text); the videos are
therefore answered by `read_video_resource`, which `HailuoServer` calls before the SDK's own
resources/read handling. The templates stay registered: for resources/templates/list, and
for reads inside the process (`MCPServer.read_resource`), which take the same checks.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, BlobResourceContents, ReadResourceResult

from hailuo_mcp.callers import caller_of
from hailuo_mcp.digests import (
    PART_BYTES,
    PartOutOfRange,
    base64_of_file,
    read_part,
    sha256_of,
)
from hailuo_mcp.errors import HailuoError
from hailuo_mcp.ledger.records import TaskRecord
from hailuo_mcp.models import TASK_ID_RULE, is_valid_task_id
from hailuo_mcp.player import PART_META_KEY, VIDEO_PART_URI, parts_hint
from hailuo_mcp.runtime import Runtime, runtime_of
from hailuo_mcp.tool_results import VIDEO_URI, video_uri

logger = logging.getLogger(__name__)

TASK_URI = "hailuo://tasks/{task_id}"
MP4 = "video/mp4"

_VIDEO_URI_RE = re.compile(r"hailuo://videos/(?P<task_id>[^/]*)\.mp4(?:/parts/(?P<index>[^/]*))?")
_INDEX_RE = re.compile(r"0|[1-9][0-9]{0,8}")


def task_uri(task_id: str) -> str:
    """The resource URI of a task."""
    return TASK_URI.format(task_id=task_id)


# Looking a task up: the one place every resource read asks the ledger.


async def _task_record(runtime: Runtime, request: Any, task_id: str) -> TaskRecord:
    """The ledger's row of a task the resources may show (ResourceNotFoundError otherwise).

    Every resource read looks its task up here and nowhere else, with the SDK's request
    context (`request`): the one place that limits reads to the caller's own tasks.
    """
    if not is_valid_task_id(task_id):
        raise ResourceNotFoundError(f"task_id: not a task id ({TASK_ID_RULE})")
    try:
        # The caller's own tasks only: another's is as unknown as a task never made.
        service = runtime.service.for_caller(caller_of(request))
        record = await service.own_record(task_id)
    except HailuoError as exc:
        raise ResourceError(exc.message) from exc
    if record is None:
        raise ResourceNotFoundError(
            f"task_id: task {task_id} is not in this server's ledger: call get_task to look it up"
        )
    return record


def _output_dir(runtime: Runtime) -> Path:
    # The settings the service runs with (demo mode's, when it serves its emulator).
    return (runtime.served or runtime.settings).output_dir


def _inside(real: Path, output_dir: Path) -> bool:
    """The one rule for what is served: a real file inside the output folder."""
    return real.is_relative_to(output_dir.resolve()) and real.is_file()


def served_path(runtime: Runtime, saved: Path) -> Path | None:
    """The real path of a saved file that a read would serve, else None (resources/list)."""
    try:
        real = saved.resolve(strict=True)
    except OSError:
        return None
    return real if _inside(real, _output_dir(runtime)) else None


def _servable(output_dir: Path, task_id: str, saved: Path) -> Path:
    """The real path of a task's saved file, if it is a file inside the output folder."""
    try:
        real = saved.resolve(strict=True)
    except OSError as exc:
        raise ResourceError(
            f"the video of task {task_id} is no longer at {saved} ({exc.strerror}): "
            "call get_task to save it again"
        ) from exc
    if not _inside(real, output_dir):
        # A moved output folder, a symlink out of it, or a row written elsewhere: never served.
        logger.warning("task %s: its saved file is outside the output folder; not served", task_id)
        raise ResourceError(
            f"the video of task {task_id} is not a file inside this server's output folder "
            "(HAILUO_OUTPUT_DIR), so it is not served"
        )
    return real


async def _saved_video(runtime: Runtime, request: Any, task_id: str) -> Path:
    """The task's saved MP4, inside the output folder (ResourceError otherwise)."""
    record = await _task_record(runtime, request, task_id)
    if not record.video_path:
        raise ResourceNotFoundError(
            f"task_id: task {task_id} has no saved video (yet): call get_task"
        )
    return _servable(_output_dir(runtime), task_id, Path(record.video_path))


# The task's JSON.


async def task_json(runtime: Runtime, request: Any, task_id: str) -> str:
    """A task's JSON from the ledger (ResourceError for an unknown or invalid id)."""
    record = await _task_record(runtime, request, task_id)
    task: dict[str, Any] = runtime.service.result_from_record(record).model_dump(mode="json")
    task["video"] = None
    if record.video_path:
        try:
            path = _servable(_output_dir(runtime), task_id, Path(record.video_path))
            size = path.stat().st_size
            task["video"] = {
                "uri": video_uri(task_id),
                "path": str(record.video_path),
                "size": size,
                "sha256": await sha256_of(path),
                "mime_type": MP4,
                "parts": parts_hint(task_id, size),
            }
        except (OSError, ResourceError):
            task["video"] = None  # saved once, since moved or deleted: get_task saves it again
    return json.dumps(task, ensure_ascii=False, indent=2)


# The videos, encoded from disk.


async def read_video_resource(
    ctx: ServerRequestContext[Any], uri: str
) -> ReadResourceResult | None:
    """resources/read of a saved video or one of its parts; None for any other URI.

    Errors are the SDK's: -32602 for an unknown task or a bad index, -32603 for a file that
    cannot be served, each with a message naming the field and its rule.
    """
    match = _VIDEO_URI_RE.fullmatch(uri)
    runtime = ctx.lifespan_context
    if match is None or not isinstance(runtime, Runtime):
        return None
    try:
        if match["index"] is None:
            content = await _whole_video(runtime, ctx, match["task_id"], uri)
        else:
            content = await _video_part(runtime, ctx, match["task_id"], match["index"], uri)
    except ResourceError as exc:
        logger.info("resource %r failed: %s", uri, exc)
        code = INVALID_PARAMS if isinstance(exc, ResourceNotFoundError) else INTERNAL_ERROR
        raise MCPError(code=code, message=str(exc), data={"uri": uri}) from exc
    return ReadResourceResult(contents=[content])


async def _whole_video(
    runtime: Runtime, request: Any, task_id: str, uri: str
) -> BlobResourceContents:
    path = await _saved_video(runtime, request, task_id)
    try:
        size = path.stat().st_size
        text = await anyio.to_thread.run_sync(base64_of_file, path)
    except OSError as exc:
        raise ResourceError(f"the video of task {task_id} could not be read ({exc})") from exc
    return BlobResourceContents(
        uri=uri, blob=text, mime_type=MP4, _meta={PART_META_KEY: parts_hint(task_id, size)}
    )


def _part_index(raw: str) -> int:
    if not _INDEX_RE.fullmatch(raw):
        shown = raw if len(raw) <= 20 else raw[:20] + "…"
        raise ResourceNotFoundError(
            f"index: must be a part number, a whole number from 0 written without sign or "
            f"leading zeros, not {shown!r}"
        )
    return int(raw)


async def _video_part(
    runtime: Runtime, request: Any, task_id: str, raw_index: str, uri: str
) -> BlobResourceContents:
    index = _part_index(raw_index)
    path = await _saved_video(runtime, request, task_id)
    try:
        part = await anyio.to_thread.run_sync(read_part, path, index)
    except PartOutOfRange as exc:
        raise ResourceNotFoundError(
            f"index: must be from 0 to {exc.count - 1}: the video of task {task_id} has "
            f"{exc.count} part{'s' if exc.count > 1 else ''} of {PART_BYTES} bytes "
            f"(asked for {index})"
        ) from exc
    except OSError as exc:
        raise ResourceError(f"the video of task {task_id} could not be read ({exc})") from exc
    meta = {
        PART_META_KEY: {
            "index": part.index,
            "count": part.count,
            "offset": part.offset,
            "size": len(part.data),
            "file_size": part.file_size,
            "part_bytes": PART_BYTES,
            "sha256": part.sha256,
        }
    }
    return BlobResourceContents(uri=uri, blob=part.base64(), mime_type=MP4, _meta=meta)


def register_task_resource(mcp: MCPServer[Runtime]) -> None:
    """Add the task, saved-video and video-part resource templates to the server."""

    @mcp.resource(
        TASK_URI,
        name="task",
        title="A Hailuo task",
        description="A task's status, request, cost and saved video, from the server's ledger "
        "(no upstream call; get_task asks PiAPI).",
        mime_type="application/json",
    )
    async def task(task_id: str, ctx: Context) -> str:
        """A task's JSON from the ledger."""
        return await task_json(runtime_of(ctx), ctx.request_context, task_id)

    # resources/read of a video or a part reaches read_video_resource first; these functions
    # answer only reads made inside the process (`MCPServer.read_resource`).
    @mcp.resource(
        VIDEO_URI,
        name="saved_video",
        title="A saved Hailuo video",
        description="The MP4 a task saved on the server's machine (listed in resources/list).",
        mime_type=MP4,
    )
    async def saved_video(task_id: str, ctx: Context) -> bytes:
        """The bytes of a task's saved video."""
        path = await _saved_video(runtime_of(ctx), ctx.request_context, task_id)
        return await anyio.Path(path).read_bytes()

    @mcp.resource(
        VIDEO_PART_URI,
        name="saved_video_part",
        title="A part of a saved Hailuo video",
        description=f"Part `index` (from 0) of a saved MP4, {PART_BYTES} bytes each (the last "
        "may be shorter); `_meta` gives its offset, the part count and its SHA-256. The player "
        "reads a video this way, one bounded message at a time.",
        mime_type=MP4,
    )
    async def saved_video_part(task_id: str, index: str, ctx: Context) -> bytes:
        """The bytes of one part of a task's saved video."""
        path = await _saved_video(runtime_of(ctx), ctx.request_context, task_id)
        try:
            part = await anyio.to_thread.run_sync(read_part, path, _part_index(index))
        except PartOutOfRange as exc:
            raise ResourceNotFoundError(f"index: must be from 0 to {exc.count - 1}") from exc
        return part.data
