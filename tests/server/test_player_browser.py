"""The player in a real browser: headless Chromium, a host page speaking the Apps protocol.

``tests/apps_host/drive.mjs`` starts the real server over stdio (TypeScript SDK client, MCP
Apps advertised), loads the tool's ``ui://`` view in a sandboxed iframe under the CSP a host
builds from the resource's metadata, inside a page running the ext-apps host bridge
(``AppBridge``), calls the tool and delivers its real result through the bridge. The view
reads the saved video through the bridge, one part after another, and plays it. Nothing is
skipped: without Chromium or the node packages the tests fail and say to run ``.ci/browser.sh``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import struct
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from PIL import Image

from hailuo_mcp.digests import PART_BYTES, part_count
from hailuo_mcp.emulator import Emulator
from hailuo_mcp.player import PLAYER_META_KEY, PLAYER_URI, video_part_uri
from hailuo_mcp.server import build_server
from tests.interop_support import REPO_ROOT, hailuo_command, node, server_env
from tests.support import FAST, MakeEmulator, make_settings

HOST_DIR = REPO_ROOT / "tests" / "apps_host"
DRIVER = HOST_DIR / "drive.mjs"
CHROMIUM = Path("/usr/bin/chromium")
SETUP_HINT = "run `bash .ci/browser.sh` (Debian chromium and the npm packages of tests/apps_host)"
DRIVER_TIMEOUT_S = 120.0


def require_browser() -> None:
    """Chromium and the host's node packages are installed, or the test fails saying how."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.fail(f"Chromium is not installed: {SETUP_HINT}")
    for package in ("@modelcontextprotocol/ext-apps", "playwright-core", "esbuild"):
        if not (HOST_DIR / "node_modules" / package).is_dir():
            pytest.fail(f"tests/apps_host/node_modules/{package} is missing: {SETUP_HINT}")


def drive(
    env: Mapping[str, str], tmp_path: Path, tool: str, arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """Run the driver once: the server, the browser, one tool call shown in the player."""
    require_browser()
    command, *args = hailuo_command()
    request = {
        "server": {"command": command, "args": args, "env": dict(env), "cwd": str(REPO_ROOT)},
        "chromium": str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
        "screenshot": str(tmp_path / "player.png"),
        "call": {"name": tool, "arguments": dict(arguments)},
        "play_seconds": 1.0,
        "timeout_s": 60,
    }
    completed = subprocess.run(
        [node(), str(DRIVER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT_S,
        cwd=HOST_DIR,
    )
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    if not lines:
        pytest.fail(
            f"the driver printed nothing (exit {completed.returncode}):\n{completed.stderr}"
        )
    answer: dict[str, Any] = json.loads(lines[-1])
    if "fatal" in answer:
        pytest.fail(f"the browser run failed: {answer['fatal']}\n{completed.stderr[-3000:]}")
    return answer


def assert_played_the_saved_file(answer: Mapping[str, Any], tmp_path: Path, task_id: str) -> Path:
    """The <video> played the saved file, read through the host in parts; no error, nothing
    fetched."""
    shown = answer["shown"]
    video = Path(shown["file"])
    assert video.is_file() and video.suffix == ".mp4", shown
    count = part_count(video.stat().st_size)
    assert answer["console"] == [], answer["console"]
    first, last = shown["times"]
    assert last > first and not shown["paused"], shown
    assert shown["srcScheme"] == "data"  # the bytes came through the bridge, not a URL
    assert (shown["videoWidth"], shown["videoHeight"]) == (480, 270)  # the sample's size
    # The page checked the bytes it played against the sha256 the result gave.
    assert shown["sha256"] == "verified"
    # One part after another, each part once; the loading progress shown for each.
    reads = [call for call in answer["appCalls"] if call["method"] == "resources/read"]
    assert reads == [
        {"method": "resources/read", "params": {"uri": video_part_uri(task_id, index)}}
        for index in range(count)
    ]
    assert shown["parts"] == f"{count}/{count}" and shown["progressHidden"] is True
    progress = [text for text in shown["statusLog"] if "% (part " in text]
    assert progress[-1] == f"Loading the saved video… 100% (part {count} of {count})", progress
    assert len(progress) == count, shown["statusLog"]
    # Only the two pages were requested: the video never came from PiAPI's URL.
    assert answer["requests"] == [
        "http://127.0.0.1:8765/host.html",
        "http://localhost:8766/view.html",
    ]
    assert shown["task"] == task_id
    screenshot = tmp_path / "player.png"
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.width >= 600
    return video


def test_the_player_plays_the_saved_video_in_chromium_with_its_facts(
    fast_emulator: Emulator, tmp_path: Path
) -> None:
    env = server_env(fast_emulator, tmp_path)
    answer = drive(env, tmp_path, "generate_video", {"prompt": "a paper boat on a pond"})
    tools = {tool["name"]: tool["ui"] for tool in answer["tools"]}
    assert tools["generate_video"] == tools["get_task"] == {"resourceUri": PLAYER_URI}
    assert answer["view"]["mimeType"] == "text/html;profile=mcp-app"
    assert answer["view"]["meta"]["ui"]["csp"] == {}
    data = answer["result"]["structuredContent"]
    video = assert_played_the_saved_file(answer, tmp_path, data["task_id"])
    assert video == Path(data["video_path"])
    hints = answer["result"]["_meta"][PLAYER_META_KEY]
    assert hints["sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()
    shown = answer["shown"]
    assert shown["prompt"] == "a paper boat on a pond"
    assert (shown["model"], shown["duration"], shown["resolution"]) == ("v2.3", "6 s", "768p")
    assert shown["cost"] == "$0.23 charged" and shown["state"] == "completed"
    assert shown["posterScheme"] == "data:image/jpeg;base64"  # the poster frame, while it loads


@pytest.mark.emulator(clock=8.0)  # generation takes about 9.5 real seconds: seen running
def test_the_player_shows_a_running_task_live_and_plays_it_once_saved(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = server_env(emulator, tmp_path, HAILUO_EXPECTED_SECONDS=str(77 / 8))
    answer = drive(env, tmp_path, "generate_video", {"prompt": "a slow sunrise", "wait_seconds": 0})
    assert answer["result"]["structuredContent"]["done"] is False
    states = [seen["state"] for seen in answer["states"]]
    assert "processing" in states and states[-1] == "completed", answer["states"]
    running = [seen["status"] for seen in answer["states"] if seen["state"] == "processing"]
    assert running and running[0].startswith("Generating (processing)"), answer["states"]
    # The view followed the task itself, with get_task through the host.
    follows = [call for call in answer["appCalls"] if call["method"] == "tools/call"]
    assert follows and {call["params"]["name"] for call in follows} == {"get_task"}
    task_id = answer["result"]["structuredContent"]["task_id"]
    assert all(call["params"]["arguments"]["task_id"] == task_id for call in follows)
    assert_played_the_saved_file(answer, tmp_path, task_id)


async def _generate_in_process(emulator: Emulator, tmp_path: Path) -> dict[str, Any]:
    settings = make_settings(emulator, tmp_path)
    async with Client(build_server(settings)) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("generate_video", {"prompt": "a lighthouse at dusk"})
    assert not result.is_error
    return dict(result.structured_content or {})


def pad_mp4(path: Path, size: int) -> None:
    """Make an MP4 ``size`` bytes long, still playable: a trailing ``free`` box (ISO 14496-12)."""
    filler = size - path.stat().st_size
    assert filler >= 8
    with path.open("ab") as file:
        file.write(struct.pack(">I", filler) + b"free" + bytes(filler - 8))


def test_the_player_plays_the_saved_file_after_piapi_and_its_url_are_gone(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emulator = make_emulator(clock=FAST)
    saved = anyio.run(_generate_in_process, emulator, tmp_path)
    env = server_env(emulator, tmp_path)
    emulator.stop()
    # A video of three parts (the last one short): the player reads each and assembles them.
    pad_mp4(Path(saved["video_path"]), 2 * PART_BYTES + 12345)
    # PiAPI is gone (its URL with it); the ledger and the saved file remain.
    answer = drive(env, tmp_path, "get_task", {"task_id": saved["task_id"]})
    assert answer["result"]["structuredContent"]["video_url"] == saved["video_url"]
    video = assert_played_the_saved_file(answer, tmp_path, saved["task_id"])
    assert video == Path(saved["video_path"])
    assert answer["shown"]["parts"] == "3/3"
    assert answer["result"]["_meta"][PLAYER_META_KEY]["parts"]["count"] == 3
    poster = next(b for b in answer["result"]["content"] if b["type"] == "image")
    assert base64.b64decode(poster["data"])[:2] == b"\xff\xd8"  # a JPEG
