"""`hailuo-mcp demo`: one real generation through the MCP tools, on the built-in emulator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from hailuo_mcp.config import Settings
from hailuo_mcp.server import build_server


def _write(line: str) -> None:
    # The demo is a terminal program, not the stdio server: stdout is the user's.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _generate(settings: Settings, arguments: dict[str, Any]) -> int:
    server = build_server(settings)
    async with Client(server) as client:

        async def show(progress: float, total: float | None, message: str | None) -> None:
            sys.stderr.write(f"\r  {progress:5.1f}%  {message or ''}"[:120].ljust(120))
            sys.stderr.flush()

        _write(f"Generating on the built-in PiAPI emulator: {arguments['prompt']!r}")
        result = await client.call_tool("generate_video", arguments, progress_callback=show)
        sys.stderr.write("\n")
        data = result.structured_content or {}
        if result.is_error:
            text = " ".join(getattr(block, "text", "") for block in result.content)
            _write(f"Failed: {text}")
            return 1
        if not data.get("video_path"):
            _write(f"Not finished: {data.get('next_step', '')}")
            return 1
        _write(f"Task {data['task_id']}: {data['status']}, ${data.get('cost_usd')} (emulated)")
        _write(f"Saved: {data['video_path']}")
        return 0


def run_demo(
    settings: Settings,
    *,
    prompt: str,
    model: str,
    duration: int,
    resolution: int,
    image_url: str | None,
    speed: float,
) -> int:
    """Run one generation against the emulator in-process and print the saved file."""
    demo_settings = settings.model_copy(
        update={"demo": True, "demo_speed": speed, "wait_seconds": max(settings.wait_seconds, 300)}
    )
    arguments: dict[str, Any] = {
        "prompt": prompt,
        "model": model,
        "duration": duration,
        "resolution": resolution,
    }
    if image_url:
        # A file named on the command line is relative to where the user stands.
        local = Path(image_url).expanduser()
        arguments["image_url"] = str(local.resolve()) if local.exists() else image_url
    return anyio.run(_generate, demo_settings, arguments)
