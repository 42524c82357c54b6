"""The MCP Inspector CLI (0.15.0), the tool people reach for first to try a server.

It starts the server over stdio with its own environment, prints a tools/list or tools/call
answer as JSON on stdout and exits 0, or prints `Failed to ...: <error>` and exits 1. It is
built on the TypeScript SDK client, so it rejects a result whose structuredContent breaks the
tool's outputSchema with MCP error -32602.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.interop_support import (
    CLIENT_TIMEOUT_S,
    INSPECTOR,
    REPO_ROOT,
    hailuo_command,
    node,
    require,
    server_env,
)


def inspector(env: dict[str, str], *method: str) -> Any:
    """`mcp-inspector --cli <server> <method...>` run in `env`; its JSON answer."""
    completed = subprocess.run(
        [node(), str(require(INSPECTOR)), "--cli", *hailuo_command(), *method],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        env=env,
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, (
        f"the Inspector failed (exit {completed.returncode}):\n{completed.stdout}{completed.stderr}"
    )
    return json.loads(completed.stdout)


def generate(env: dict[str, str]) -> Any:
    return inspector(
        env, "--method", "tools/call", "--tool-name", "generate_video", "--tool-arg", "prompt=hello"
    )


def test_the_inspector_lists_the_four_tools(tmp_path: Path) -> None:
    answer = inspector(server_env(None, tmp_path), "--method", "tools/list")

    names = {entry["name"] for entry in answer["tools"]}
    assert {"generate_video", "get_task", "estimate_cost", "list_tasks"} <= names


def test_the_inspector_shows_the_missing_key_result_instead_of_an_mcp_error(
    tmp_path: Path,
) -> None:
    result = generate(server_env(None, tmp_path))

    assert result["isError"] is True
    text = "\n".join(block["text"] for block in result["content"] if block["type"] == "text")
    assert "PIAPI_API_KEY" in text and "configuration" in text


def test_the_inspector_generates_a_demo_video_without_a_key(tmp_path: Path) -> None:
    env = server_env(None, tmp_path, HAILUO_DEMO="1", HAILUO_DEMO_SPEED="50")
    result = generate(env)

    assert result.get("isError") is not True, result
    video = Path(result["structuredContent"]["video_path"])
    assert video.is_file() and tmp_path in video.parents
