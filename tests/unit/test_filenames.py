"""Saved files the way users want them: a readable default name, their own name made safe and
never overwriting, and a fresh video URL on request."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import anyio
import pytest
from mcp import Client

from hailuo_mcp.emulator import Emulator
from hailuo_mcp.filenames import MAX_NAME_CHARS, default_name, free_path, safe_name
from hailuo_mcp.server import build_server
from tests.support import error_of, make_settings, text_of

pytestmark = pytest.mark.emulator(clock=100, seed=9, fixed_durations=None)


@pytest.mark.parametrize(
    ("wanted", "safe"),
    [
        ("fox in autumn", "fox in autumn.mp4"),
        ("fox.MP4", "fox.mp4"),
        ("../../etc/passwd", "passwd.mp4"),
        ("..\\..\\windows\\win.ini", "win.ini.mp4"),
        ("a\x00b\x1fc.mp4", "abc.mp4"),
        ("CON", "_CON.mp4"),
        ("lpt1.mp4", "_lpt1.mp4"),
        ("aux.final", "_aux.final.mp4"),
        ("what?*<>|:", "what.mp4"),
        (".hidden", "hidden.mp4"),
    ],
)
def test_a_users_file_name_is_made_safe(wanted: str, safe: str) -> None:
    assert safe_name(wanted) == safe


@pytest.mark.parametrize("wanted", ["", "..", "../", "  .  ", "\x00\x00", "???"])
def test_nothing_usable_left_is_none(wanted: str) -> None:
    assert safe_name(wanted) is None


def test_a_300_character_name_is_cut_to_the_limit() -> None:
    name = safe_name("x" * 300)
    assert name is not None and len(name) == MAX_NAME_CHARS and name.endswith(".mp4")


def test_the_default_name_says_when_what_and_which() -> None:
    created = datetime(2026, 12, 1, 9, 30).timestamp()
    name = default_name("A red fox, running through autumn leaves!", "3f9a1c22-77ab", created)
    assert name == "2026-12-01-a-red-fox-running-through-autumn-leaves-3f9a1c.mp4"
    assert default_name(None, "abc", created) == "2026-12-01-video-abc.mp4"


def test_a_taken_name_gets_a_suffix(tmp_path: Path) -> None:
    (tmp_path / "fox.mp4").write_bytes(b"first")
    (tmp_path / "fox (2).mp4").write_bytes(b"second")
    assert free_path(tmp_path, "fox.mp4") == tmp_path / "fox (3).mp4"


@pytest.mark.anyio
async def test_the_users_name_is_used_and_never_overwrites(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path)
    async with Client(build_server(settings)) as c:
        with anyio.fail_after(30):
            first = await c.call_tool("generate_video", {"prompt": "one", "filename": "../fox"})
            second = await c.call_tool("generate_video", {"prompt": "two", "filename": "fox.mp4"})
            unnamed = await c.call_tool("generate_video", {"prompt": "A heron takes off"})
            refused = await c.call_tool("generate_video", {"prompt": "x", "filename": "../.."})
    paths = [Path((r.structured_content or {})["video_path"]) for r in (first, second, unnamed)]
    assert [p.name for p in paths[:2]] == ["fox.mp4", "fox (2).mp4"]
    assert all(p.parent == settings.output_dir and p.is_file() for p in paths)
    assert paths[0].read_bytes() == paths[1].read_bytes()  # both whole, neither overwritten
    assert "-a-heron-takes-off-" in paths[2].name
    assert error_of(refused)["error_kind"] == "invalid_input"
    assert "filename" in text_of(refused)
    assert emulator.creates() == 3


@pytest.mark.anyio
async def test_refresh_url_asks_piapi_again_for_a_saved_video(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path)
    async with Client(build_server(settings)) as c:
        with anyio.fail_after(30):
            made = await c.call_tool("generate_video", {"prompt": "x"})
            task_id = (made.structured_content or {})["task_id"]
            gets = emulator.gets(task_id)
            cached = await c.call_tool("get_task", {"task_id": task_id})
            assert emulator.gets(task_id) == gets  # a saved video is answered from the ledger
            fresh = await c.call_tool("get_task", {"task_id": task_id, "refresh_url": True})
    assert emulator.gets(task_id) == gets + 1
    data = fresh.structured_content or {}
    assert data["video_url"].startswith(emulator.url)
    assert data["video_path"] == (cached.structured_content or {})["video_path"]
