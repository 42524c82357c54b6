"""VideoDownloader: a video is at its path complete or not at all, and the key never leaves.

The emulator serves the videos and scripts their faults; a recording host on loopback shows
what a video host receives.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hailuo_mcp.config import Settings
from hailuo_mcp.downloads import VideoDownloader
from hailuo_mcp.emulator import Emulator, Fault
from hailuo_mcp.errors import DownloadError, StorageError
from hailuo_mcp.models import VideoRequest
from hailuo_mcp.piapi import PiAPIClient
from tests.support import KEY, make_settings

pytestmark = pytest.mark.anyio

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 512  # 128 KiB: several chunks


@pytest.fixture
def settings(emulator: Emulator, tmp_path: Path) -> Settings:
    return make_settings(emulator, tmp_path, HAILUO_DOWNLOAD_TIMEOUT="2")


@pytest.fixture
async def downloader(settings: Settings) -> AsyncIterator[VideoDownloader]:
    async with VideoDownloader(settings) as videos:
        yield videos


async def finished_video(emulator: Emulator, settings: Settings) -> tuple[str, str]:
    """A completed task on the emulator: its id and its video's URL."""
    async with PiAPIClient(settings) as client:
        task = await client.create(VideoRequest(prompt="x"))
        emulator.advance(100)
        done = await client.get(task.task_id)
    assert done.video_url
    return task.task_id, done.video_url


def video_host(seen: list[dict[str, str]]) -> ASGIApp:
    """/video.mp4 (the file), /moved (a redirect to it); every request's headers recorded."""

    async def video(request: Request) -> Response:
        return Response(VIDEO, media_type="video/mp4")

    async def moved(request: Request) -> Response:
        return RedirectResponse("/video.mp4", status_code=302)

    inner = Starlette(routes=[Route("/video.mp4", video), Route("/moved", moved)])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await inner(scope, receive, send)

    return app


@pytest.mark.parametrize(
    ("fault", "words", "cause"),
    [
        (Fault("download", "truncate"), "interrupted after", httpx.RemoteProtocolError),
        (Fault("download", "not_found"), "HTTP 404 (expired?)", None),
        (Fault("download", "status", status=500), "answered HTTP 500.", None),
    ],
    ids=["truncated", "expired", "500"],
)
async def test_a_broken_download_leaves_nothing_and_a_later_one_saves_the_whole_file(
    emulator: Emulator,
    settings: Settings,
    downloader: VideoDownloader,
    fault: Fault,
    words: str,
    cause: type[BaseException] | None,
) -> None:
    task_id, url = await finished_video(emulator, settings)
    target = settings.output_dir / "video.mp4"
    emulator.add_fault(fault)
    with pytest.raises(DownloadError, match=re.escape(words)) as caught:
        await downloader.download(url, target, task_id=task_id)
    assert caught.value.task_id == task_id
    if cause is None:
        assert caught.value.__cause__ is None
    else:
        assert isinstance(caught.value.__cause__, cause)
    assert list(settings.output_dir.iterdir()) == []
    size = await downloader.download(url, target, task_id=task_id)
    assert target.stat().st_size == size > 0
    assert list(settings.output_dir.iterdir()) == [target]


async def test_a_download_over_its_budget_stops_there_and_leaves_nothing(
    emulator: Emulator, settings: Settings, downloader: VideoDownloader
) -> None:
    task_id, url = await finished_video(emulator, settings)
    emulator.add_fault(Fault("download", "hang", delay=10))
    with anyio.fail_after(5), pytest.raises(DownloadError) as caught:
        await downloader.download(url, settings.output_dir / "v.mp4", task_id=task_id)
    assert "took longer than 2 s" in caught.value.message
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert caught.value.task_id == task_id
    assert list(settings.output_dir.iterdir()) == []


async def test_the_video_host_never_gets_the_key_and_the_file_is_byte_identical(
    settings: Settings,
    downloader: VideoDownloader,
    serve_app: Callable[[ASGIApp], str],
) -> None:
    seen: list[dict[str, str]] = []
    host = serve_app(video_host(seen))
    target = settings.output_dir / "v.mp4"
    size = await downloader.download(f"{host}/video.mp4", target, task_id="t1")
    assert size == len(VIDEO) and target.read_bytes() == VIDEO
    (request,) = seen
    assert "x-api-key" not in request
    assert all(KEY not in value for value in request.values())
    assert request["user-agent"] == "hailuo-mcp"


async def test_a_redirect_is_a_failed_download_and_is_not_followed(
    settings: Settings,
    downloader: VideoDownloader,
    serve_app: Callable[[ASGIApp], str],
) -> None:
    seen: list[dict[str, str]] = []
    host = serve_app(video_host(seen))
    with pytest.raises(DownloadError, match="answered HTTP 302"):
        await downloader.download(f"{host}/moved", settings.output_dir / "v.mp4", task_id="t1")
    assert len(seen) == 1
    assert list(settings.output_dir.iterdir()) == []


async def test_an_output_folder_that_cannot_exist_is_a_storage_error_naming_the_task(
    tmp_path: Path, emulator: Emulator
) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    settings = make_settings(emulator, tmp_path, HAILUO_OUTPUT_DIR=str(tmp_path / "blocker" / "v"))
    async with VideoDownloader(settings) as downloader:
        with pytest.raises(StorageError) as caught:
            await downloader.download(
                f"{emulator.url}/ephemeral/none.mp4", settings.output_dir / "v.mp4", task_id="t1"
            )
    assert "Cannot write to the output folder" in caught.value.message
    assert caught.value.task_id == "t1"
    assert isinstance(caught.value.__cause__, OSError)
    assert emulator.log == []  # nothing was fetched that could not be kept


async def test_a_refused_connection_is_a_download_error_with_its_cause(
    settings: Settings, downloader: VideoDownloader
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match=r"after 0 bytes \(ConnectError\)") as caught:
        await downloader.download(
            f"http://127.0.0.1:{port}/v.mp4", settings.output_dir / "v.mp4", task_id="t1"
        )
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert list(settings.output_dir.iterdir()) == []
