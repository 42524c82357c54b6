"""The keyless paths: `hailuo-mcp demo` and HAILUO_DEMO=1 for the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from hailuo_mcp.config import Settings
from hailuo_mcp.server import build_server


def test_the_demo_command_leaves_a_playable_mp4_on_disk(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "hailuo_mcp", "demo", "a paper boat", "--speed", "100"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    saved = [line for line in done.stdout.decode().splitlines() if line.startswith("Saved: ")]
    assert len(saved) == 1
    video = Path(saved[0].removeprefix("Saved: "))
    # Emulated videos stay apart from real ones.
    assert video.parent == tmp_path / "videos" / "demo"
    data = video.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data and len(data) > 10_000
    assert (tmp_path / "state" / "demo" / "tasks.sqlite3").is_file()
    assert not (tmp_path / "state" / "tasks.sqlite3").exists()  # the real ledger is untouched


@pytest.mark.anyio
async def test_the_server_in_demo_mode_needs_no_key(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "HAILUO_DEMO": "1",
            "HAILUO_DEMO_SPEED": "100",
            "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
            "HAILUO_STATE_DIR": str(tmp_path / "state"),
        }
    )
    assert settings.api_key is None
    async with Client(build_server(settings)) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("generate_video", {"prompt": "origami crane"})
    assert not result.is_error
    data = result.structured_content or {}
    assert Path(data["video_path"]).is_file()
    # Emulated, and said so: nothing is charged and the answer claims no charge.
    assert data["emulated"] is True and data["charged"] is False
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "emulated, nothing charged" in text and "$0.23 charged" not in text


@pytest.mark.anyio
async def test_demo_tasks_left_over_after_a_restart_end_cleanly(tmp_path: Path) -> None:
    env = {
        "HAILUO_DEMO": "1",
        "HAILUO_DEMO_SPEED": "1",
        "HAILUO_RESUME": "0",
        "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
    }
    async with Client(build_server(Settings.from_env(env))) as client:
        with anyio.fail_after(30):
            started = await client.call_tool("generate_video", {"prompt": "x", "wait_seconds": 0})
    task_id = (started.structured_content or {})["task_id"]
    # A new server: its emulator never heard of the task.
    async with Client(build_server(Settings.from_env(env))) as client:
        with anyio.fail_after(30):
            looked_up = await client.call_tool("get_task", {"task_id": task_id})
    assert not looked_up.is_error
    data = looked_up.structured_content or {}
    assert (data["status"], data["done"]) == ("cancelled", True)
    text = " ".join(getattr(block, "text", "") for block in looked_up.content)
    assert "emulator restarted" in text and "no such task" not in text


@pytest.mark.anyio
async def test_a_demo_emulator_that_cannot_start_is_told_through_the_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The port cannot be bound (an OSError, not one of ours): before, the tool answered a bare
    # "Error executing tool" and the session died with an ExceptionGroup.
    def no_port(host: str, port: int) -> None:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr("hailuo_mcp.emulator.control.bind_socket", no_port)
    settings = Settings.from_env(
        {
            "HAILUO_DEMO": "1",
            "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
            "HAILUO_STATE_DIR": str(tmp_path / "state"),
        }
    )
    async with Client(build_server(settings)) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("generate_video", {"prompt": "x"})
            price = await client.call_tool("estimate_cost", {})
    assert result.is_error
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Address already in use" in text and "could not open its resources" in text
    assert not price.is_error  # the session lives on
