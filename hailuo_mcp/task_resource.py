"""Tasks as resources: ``hailuo://tasks/{task_id}``, a task's JSON from the local ledger.

Reading it makes no upstream call and changes nothing (get_task is the tool that asks PiAPI);
it is what the ledger knows now, in the same fields as get_task's structured result, with the
saved video's resource URI, size and SHA-256 when there is one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError

from hailuo_mcp.digests import sha256_of
from hailuo_mcp.errors import HailuoError
from hailuo_mcp.models import is_valid_task_id
from hailuo_mcp.runtime import Runtime, runtime_of
from hailuo_mcp.tool_results import video_uri

TASK_URI = "hailuo://tasks/{task_id}"


def task_uri(task_id: str) -> str:
    """The resource URI of a task."""
    return TASK_URI.format(task_id=task_id)


async def task_json(runtime: Runtime, task_id: str) -> str:
    """A task's JSON from the ledger (ResourceError for an unknown or invalid id)."""
    if not is_valid_task_id(task_id):
        raise ResourceError("not a task id")
    try:
        service = runtime.service
        record = await service.ledger.get(task_id)
    except HailuoError as exc:
        raise ResourceError(exc.message) from exc
    if record is None:
        raise ResourceError(
            f"task {task_id} is not in this server's ledger: call get_task to look it up"
        )
    task: dict[str, Any] = service.result_from_record(record).model_dump(mode="json")
    task["video"] = None
    if record.video_path:
        path = Path(record.video_path)
        try:
            size = path.stat().st_size
            task["video"] = {
                "uri": video_uri(task_id),
                "path": str(path),
                "size": size,
                "sha256": await sha256_of(path),
                "mime_type": "video/mp4",
            }
        except OSError:
            task["video"] = None  # saved once, since moved or deleted: get_task saves it again
    return json.dumps(task, ensure_ascii=False, indent=2)


def register_task_resource(mcp: MCPServer[Runtime]) -> None:
    """Add the ``hailuo://tasks/{task_id}`` resource template to the server."""

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
        return await task_json(runtime_of(ctx), task_id)
