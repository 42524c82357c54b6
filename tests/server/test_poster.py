"""The poster frame: a small JPEG of the middle of the saved video, cached beside it.

Against the emulator's real sample MP4 (6 s, 480x270, H.264). Without PyAV (the preview
extra) there is no poster and the result is as it was.
"""

from __future__ import annotations

import base64
import io
import os
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import av
import pytest
from mcp import Client
from mcp.types import CallToolResult, ImageContent
from PIL import Image

from hailuo_mcp.emulator import Emulator
from hailuo_mcp.emulator.video import sample_video
from hailuo_mcp.models import TaskStatus
from hailuo_mcp.poster import MAX_BYTES, encode, load_or_make, poster_for, poster_path
from hailuo_mcp.poster_jobs import PosterMaker
from hailuo_mcp.results import VideoResult
from hailuo_mcp.server import build_server
from hailuo_mcp.tool_results import POSTER_META_KEY, POSTER_PENDING, video_answer
from tests.support import FAST, MakeEmulator, make_settings, text_of


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "2026-12-01-a-paper-boat-1a2b3c.mp4"
    path.write_bytes(sample_video())
    return path


def video_size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height


def test_the_poster_is_a_jpeg_of_the_videos_size_from_its_middle(video: Path) -> None:
    poster = load_or_make(video)
    assert poster is not None
    assert poster.path == video.parent / "2026-12-01-a-paper-boat-1a2b3c.poster.jpg"
    assert poster.path.read_bytes() == poster.jpeg and len(poster.jpeg) <= MAX_BYTES
    with Image.open(io.BytesIO(poster.jpeg)) as image:
        image.load()  # decodes
        assert image.format == "JPEG"
        assert image.size == video_size(video) == (poster.width, poster.height) == (480, 270)
    assert poster.at_seconds == pytest.approx(3.0, abs=0.1)  # the middle of 6 s
    assert sorted(p.name for p in video.parent.iterdir()) == sorted([poster.path.name, video.name])


def test_the_cached_poster_is_read_back_until_the_video_changes(video: Path) -> None:
    made = load_or_make(video)
    assert made is not None
    stamp = made.path.stat().st_mtime_ns
    again = load_or_make(video)
    assert again == made and made.path.stat().st_mtime_ns == stamp  # not written again
    # A video newer than its poster gets a new one.
    os.utime(video, ns=(stamp + 10**9, stamp + 10**9))
    remade = load_or_make(video)
    assert remade is not None and remade.path.stat().st_mtime_ns > stamp


def test_a_poster_of_a_detailed_1080p_frame_still_fits_in_100_kb() -> None:
    noise = random.Random(7).randbytes(1920 * 1080 * 3)
    jpeg = encode(Image.frombytes("RGB", (1920, 1080), noise))
    assert len(jpeg) <= MAX_BYTES
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG" and image.width / image.height == pytest.approx(16 / 9, 0.01)


def test_a_file_that_is_not_a_video_has_no_poster_and_nothing_is_written(tmp_path: Path) -> None:
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(b"not an mp4 at all" * 100)
    assert load_or_make(junk) is None
    assert load_or_make(tmp_path / "gone.mp4") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def test_without_pyav_there_is_no_poster_but_a_cached_one_is_still_used(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # as if the preview extra were not installed
    assert load_or_make(video) is None
    assert not poster_path(video).exists()
    monkeypatch.undo()
    made = load_or_make(video)
    monkeypatch.setitem(sys.modules, "av", None)
    assert load_or_make(video) == made


def test_a_poster_that_cannot_be_cached_is_still_given_and_leaves_no_temp_file(
    video: Path,
) -> None:
    # The poster's name is taken by a folder (chmod would not stop root, who runs CI).
    poster_path(video).mkdir()
    poster = load_or_make(video)
    assert poster is not None and len(poster.jpeg) <= MAX_BYTES
    assert sorted(p.name for p in video.parent.iterdir()) == sorted(
        [poster_path(video).name, video.name]
    )


@pytest.mark.anyio
async def test_poster_for_runs_in_a_worker_thread(video: Path) -> None:
    with anyio.fail_after(10):
        poster = await poster_for(video)
    assert poster is not None and poster.width == 480


@pytest.mark.anyio
async def test_an_answer_that_cannot_wait_for_its_poster_goes_without_and_says_so(
    video: Path,
) -> None:
    result = VideoResult(
        task_id="1a2b3c",
        status=TaskStatus.COMPLETED,
        done=True,
        video_path=str(video),
        next_step="Open the file.",
    )
    async with anyio.create_task_group() as group:
        # A budget of nothing: the answer never waits for the decoder.
        impatient = PosterMaker(group, wait_s=0.0)
        first = await video_answer(result, for_player=False, posters=impatient)
        assert POSTER_PENDING in text_of(first)
        assert not [c for c in first.content if isinstance(c, ImageContent)]
        # The poster is still made and cached beside the video ...
        with anyio.fail_after(10):
            while not poster_path(video).is_file():
                await anyio.sleep(0.02)
        # ... so the next answer attaches it at once, even with no time to wait.
        again = await video_answer(result, for_player=False, posters=impatient)
    assert POSTER_PENDING not in text_of(again)
    assert [c.mime_type for c in again.content if isinstance(c, ImageContent)] == ["image/jpeg"]


# Through the tools


@pytest.fixture
async def client(fast_emulator: Emulator, tmp_path: Path) -> AsyncIterator[Client]:
    async with Client(build_server(make_settings(fast_emulator, tmp_path))) as c:
        yield c


async def generate(client: Client, prompt: str = "a paper boat") -> CallToolResult:
    with anyio.fail_after(30):
        result = await client.call_tool("generate_video", {"prompt": prompt})
    assert not result.is_error, text_of(result)
    return result


@pytest.mark.anyio
async def test_generate_video_attaches_the_poster_and_says_where_it_is(client: Client) -> None:
    result = await generate(client)
    data = result.structured_content or {}
    video = Path(data["video_path"])
    (image,) = [b for b in result.content if isinstance(b, ImageContent)]
    assert image.mime_type == "image/jpeg"
    jpeg = base64.b64decode(image.data)
    assert len(jpeg) <= MAX_BYTES
    with Image.open(io.BytesIO(jpeg)) as frame:
        frame.load()
        assert frame.size == video_size(video)
    path = poster_path(video)
    assert path.read_bytes() == jpeg
    assert (image.meta or {})[POSTER_META_KEY]["path"] == str(path)
    text = text_of(result)
    assert str(path) in text and "check that the video matches the prompt" in text
    # get_task answers with the same frame, from the cache.
    again = await client.call_tool("get_task", {"task_id": data["task_id"]})
    (cached,) = [b for b in again.content if isinstance(b, ImageContent)]
    assert cached.data == image.data


@pytest.mark.anyio
async def test_the_description_tells_the_model_to_check_the_frame(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    description = tools["generate_video"].description or ""
    assert "one frame" in description and "matches the prompt" in description


@pytest.mark.anyio
async def test_without_pyav_the_result_is_as_before(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    result = await generate(client)
    assert [block.type for block in result.content] == ["text", "resource_link"]
    assert "Attached" not in text_of(result)
    assert not poster_path(Path((result.structured_content or {})["video_path"])).exists()


@pytest.mark.anyio
async def test_a_saved_file_that_does_not_decode_gets_no_poster_and_no_error(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    # A second emulator serves 50 kB of synthetic bytes instead of the sample MP4.
    junk = make_emulator(clock=FAST, output_size=50_000)
    async with Client(build_server(make_settings(junk, tmp_path))) as client:
        result = await generate(client)
    assert [block.type for block in result.content] == ["text", "resource_link"]
