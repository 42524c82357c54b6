"""Image-to-video: image_url is checked before anything is paid, by URL and as a local file.

Images are made with Pillow at module set-up and served from a small static host on loopback
(Starlette's StaticFiles answers Range requests like a real CDN). The emulator checks the same
rules on its side: the table below is run against both lines of defence.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from hailuo_mcp.config import Settings
from hailuo_mcp.emulator import Emulator, Fault
from hailuo_mcp.errors import InputError
from hailuo_mcp.images import ImageGate
from hailuo_mcp.models import VideoRequest
from hailuo_mcp.piapi import PiAPIClient
from hailuo_mcp.server import build_server
from tests.servers import serving
from tests.support import KEY, MakeEmulator, error_of, make_settings

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


# Images


def picture(width: int, height: int, image_format: str = "PNG") -> bytes:
    """A solid-colour image; grey-scale when large, so encoding stays fast."""
    mode = "L" if width * height > 1_000_000 else "RGB"
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 120).save(buffer, format=image_format)
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def padded_png(total_bytes: int, *, before_pixels: bool = False) -> bytes:
    """A valid 640x480 PNG of exactly `total_bytes`, padded with a private ancillary chunk.

    The padding goes before IEND (header in the first bytes), or before IDAT when
    `before_pixels` (Pillow then needs to read past it to open the file).
    """
    png = picture(640, 480)
    pad = b"\0" * (total_bytes - len(png) - 12)
    marker = b"IDAT" if before_pixels else b"IEND"
    at = png.index(marker) - 4
    return png[:at] + chunk(b"haPd", pad) + png[at:]


def pixel_bomb() -> bytes:
    """A tiny PNG whose header claims 100000 x 100000 px (Pillow refuses to open it)."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Case:
    """One image and what each line of defence says about it (None: accepted)."""

    name: str
    make: Callable[[], bytes]
    ours: str | None
    emulator: str | None
    local: str | None = "same"  # "same": as `ours`


SIDE = "300 px minimum"
CASES = [
    Case("png-300.png", lambda: picture(300, 400), None, None),
    Case("png-w299.png", lambda: picture(299, 400), "299 px wide; the minimum is 300 px",
         f"image width 299 px is below the {SIDE}"),
    Case("png-h299.png", lambda: picture(400, 299), "299 px high; the minimum is 300 px",
         f"image height 299 px is below the {SIDE}"),
    Case("png-4096.png", lambda: picture(4096, 2000), None, None),
    Case("png-w4097.png", lambda: picture(4097, 2000), "4097 px wide; the maximum is 4096 px",
         "image width 4097 px is above the 4096 px maximum"),
    Case("png-h4097.png", lambda: picture(2000, 4097), "4097 px high; the maximum is 4096 px",
         "image height 4097 px is above the 4096 px maximum"),
    Case("jpg-300.jpg", lambda: picture(300, 400, "JPEG"), None, None),
    Case("jpg-w299.jpg", lambda: picture(299, 400, "JPEG"), "299 px wide",
         f"image width 299 px is below the {SIDE}"),
    Case("jpg-4096.jpg", lambda: picture(4096, 2000, "JPEG"), None, None),
    Case("jpg-w4097.jpg", lambda: picture(4097, 2000, "JPEG"), "4097 px wide",
         "image width 4097 px is above the 4096 px maximum"),
    Case("ratio-2to5.png", lambda: picture(400, 1000), None, None),
    Case("ratio-below-2to5.png", lambda: picture(400, 1001), "400x1001 px, narrower than 2:5",
         "aspect ratio 400:1001 is outside the 2:5 to 5:2 range"),
    Case("ratio-5to2.png", lambda: picture(1000, 400), None, None),
    Case("ratio-above-5to2.png", lambda: picture(1001, 400), "1001x400 px, wider than 5:2",
         "aspect ratio 1001:400 is outside the 2:5 to 5:2 range"),
    Case("anim.gif", lambda: picture(400, 400, "GIF"), "in GIF format; only JPG and PNG",
         "image format GIF is not supported"),
    Case("photo.webp", lambda: picture(400, 400, "WEBP"), "in WEBP format; only JPG and PNG",
         "image format WEBP is not supported"),
    Case("cut-body.png", lambda: picture(640, 480)[:900], "not a JPG or PNG image",
         "could not be read"),
    Case("cut-header.png", lambda: picture(640, 480)[:30], "not a JPG or PNG image",
         "could not be read"),
    Case("text.png", lambda: b"these are my holiday notes, not a picture\n" * 20,
         "not a JPG or PNG image", "could not be read"),
    Case("bomb.png", pixel_bomb,
         "too many pixels to open safely (Image size (10000000000 pixels)", "could not be read"),
    Case("20mib.png", lambda: padded_png(20 * MIB), None, None,
         local="20,971,520 bytes (20.00 MB); PiAPI's upload endpoint takes at most 10 MB"),
    Case("20mib-plus-1.png", lambda: padded_png(20 * MIB + 1),
         "20,971,521 bytes (20.00 MB); the maximum is 20 MB", "above the 20 MB maximum"),
    Case("10mib.png", lambda: padded_png(10 * MIB), None, None),
    Case("10mib-plus-1.png", lambda: padded_png(10 * MIB + 1), None, None,
         local="10,485,761 bytes (10.00 MB); PiAPI's upload endpoint takes at most 10 MB"),
]  # fmt: skip
CASE_PARAMS = [pytest.param(case, id=case.name) for case in CASES]


def local_verdict(case: Case) -> str | None:
    return case.ours if case.local == "same" else case.local


# Fixtures


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every image of the table (plus a few extras) as files in one folder."""
    folder = tmp_path_factory.mktemp("gallery")
    for case in CASES:
        (folder / case.name).write_bytes(case.make())
    (folder / "header-far.png").write_bytes(padded_png(MIB, before_pixels=True))
    return folder


@dataclass
class ImageHost:
    """A static image host on loopback, remembering the headers of every request."""

    url: str
    seen: list[dict[str, str]]

    def file(self, name: str) -> str:
        return f"{self.url}/files/{name}"


def image_host_app(folder: Path, seen: list[dict[str, str]]) -> ASGIApp:
    """/files (static, Range-capable), redirects, a hang, a page, a stream, a cookie."""

    async def redirect(request: Request) -> Response:
        hops = request.path_params["hops"]
        target = request.query_params["to"]
        location = f"/redirect/{hops - 1}?to={target}" if hops > 1 else target
        return RedirectResponse(location, status_code=302)

    async def hang(request: Request) -> Response:
        for _ in range(500):  # at most 5 s: until the prober hangs up
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.01)
        return Response(b"", 504)

    async def page(request: Request) -> Response:
        return HTMLResponse("<!doctype html><html><body><img src='/files/png-300.png'>")

    async def plain(request: Request) -> Response:
        # Ignores Range: the whole file with its Content-Length, like many small hosts.
        return Response((folder / request.path_params["name"]).read_bytes(), media_type="image/png")

    async def stream(request: Request) -> Response:
        # No Content-Length and no Range support: the size is not known from here.
        data = (folder / request.path_params["name"]).read_bytes()
        parts = (data[i : i + 65536] for i in range(0, len(data), 65536))
        return StreamingResponse(parts, media_type="image/png")

    async def status(request: Request) -> Response:
        return Response(b"", request.path_params["code"])

    async def cookie(request: Request) -> Response:
        response = Response((folder / request.path_params["name"]).read_bytes(), 200)
        response.set_cookie("visitor", "tracked-across-probes")
        return response

    inner = Starlette(
        routes=[
            Mount("/files", StaticFiles(directory=folder)),
            Route("/redirect/{hops:int}", redirect),
            Route("/hang.png", hang),
            Route("/page", page),
            Route("/plain/{name}", plain),
            Route("/stream/{name}", stream),
            Route("/status/{code:int}/{name}", status),
            Route("/cookie/{name}", cookie),
        ]
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await inner(scope, receive, send)

    return app


@pytest.fixture(scope="module")
def image_host(gallery: Path) -> Iterator[ImageHost]:
    seen: list[dict[str, str]] = []
    with serving(image_host_app(gallery, seen)) as url:
        yield ImageHost(url, seen)


@pytest.fixture
def settings(emulator: Emulator, tmp_path: Path, gallery: Path) -> Settings:
    # The emulator's clock is frozen: 77 s is the expected time (make_settings would scale it).
    return make_settings(
        emulator, tmp_path, HAILUO_IMAGE_DIRS=str(gallery), HAILUO_EXPECTED_SECONDS="77"
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as c:
        yield c


async def generate(client: Client, image_url: str, **arguments: Any) -> CallToolResult:
    with anyio.fail_after(20):
        return await client.call_tool(
            "generate_video",
            {"prompt": "the cat wakes up", "image_url": image_url, "wait_seconds": 0, **arguments},
        )


def text_of(result: CallToolResult) -> str:
    return " ".join(b.text for b in result.content if isinstance(b, TextContent))


def uploads(emulator: Emulator) -> int:
    return sum(1 for entry in emulator.log if entry.route == "upload")


def assert_refused(result: CallToolResult, emulator: Emulator, *expected: str) -> None:
    """An input error naming image_url and each expected fragment; nothing sent upstream."""
    assert result.is_error, text_of(result)
    text = text_of(result)
    assert "image_url" in text
    for fragment in expected:
        assert fragment in text
    assert error_of(result)["error_kind"] == "invalid_input"
    assert emulator.creates() == 0
    assert uploads(emulator) == 0


def created_task(result: CallToolResult, emulator: Emulator) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert emulator.creates() == 1
    return emulator.task((result.structured_content or {})["task_id"])


# The table, three ways


@pytest.mark.parametrize("case", CASE_PARAMS)
async def test_an_image_url_is_measured_and_a_broken_rule_refused_before_any_create(
    client: Client, emulator: Emulator, image_host: ImageHost, case: Case
) -> None:
    result = await generate(client, image_host.file(case.name))
    if case.ours is not None:
        assert_refused(result, emulator, case.ours)
        return
    task = created_task(result, emulator)
    assert task["input"]["image_url"] == image_host.file(case.name)
    assert (result.structured_content or {})["warnings"] == []


@pytest.mark.parametrize("case", CASE_PARAMS)
async def test_a_local_image_is_checked_then_uploaded_and_its_url_sent_upstream(
    client: Client, emulator: Emulator, gallery: Path, case: Case
) -> None:
    result = await generate(client, str(gallery / case.name))
    expected = local_verdict(case)
    if expected is not None:
        assert_refused(result, emulator, expected)
        return
    task = created_task(result, emulator)
    assert task["input"]["image_url"].startswith(f"{emulator.url}/ephemeral/uploads/")
    assert uploads(emulator) == 1


@pytest.mark.emulator(clock=10_000, seed=None)  # once its image passed, a task ends in ms
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_the_emulator_enforces_the_same_rule_when_our_check_is_bypassed(
    emulator: Emulator, image_host: ImageHost, case: Case
) -> None:
    body = {
        "model": "hailuo",
        "task_type": "video_generation",
        "input": {"prompt": "p", "model": "v2.3-fast", "image_url": image_host.file(case.name)},
    }
    response = httpx.post(f"{emulator.url}/api/v1/task", json=body, headers={"x-api-key": KEY})
    assert response.status_code == 200, response.text
    task = emulator.wait_for_status(response.json()["data"]["task_id"], timeout=10)
    if case.emulator is None:
        assert task["status"] == "completed"
        assert case.ours is None  # the two lines of defence agree
    else:
        assert task["status"] == "failed"
        assert case.emulator in task["error"]["message"]
        assert case.ours is not None


# Local files: uploads, folders, URIs


async def test_a_local_png_is_uploaded_and_the_video_completes(
    make_emulator: MakeEmulator, tmp_path: Path, gallery: Path
) -> None:
    emulator = make_emulator(clock=1000, seed=None)
    settings = make_settings(emulator, tmp_path, HAILUO_IMAGE_DIRS=str(tmp_path))
    image = tmp_path / "first frame.png"
    image.write_bytes(picture(640, 480))
    async with Client(build_server(settings)) as client:
        result = await generate(client, str(image), model="v2.3-fast", wait_seconds=20)
    task = created_task(result, emulator)
    data = result.structured_content or {}
    assert data["status"] == "completed" and Path(data["video_path"]).is_file()
    uploaded = task["input"]["image_url"]
    assert uploaded.startswith(f"{emulator.url}/ephemeral/uploads/") and uploaded.endswith(".png")
    assert data["cost_usd"] == 0.16


async def test_a_file_uri_is_read_like_a_path(
    client: Client, emulator: Emulator, gallery: Path
) -> None:
    named = gallery / "with space & ü.png"
    named.write_bytes(picture(640, 480))
    result = await generate(client, named.as_uri())
    task = created_task(result, emulator)
    assert task["input"]["image_url"].startswith(f"{emulator.url}/ephemeral/uploads/")


async def test_a_file_uri_of_a_broken_image_is_refused_with_the_measured_value(
    client: Client, emulator: Emulator, gallery: Path
) -> None:
    result = await generate(client, (gallery / "png-w299.png").as_uri())
    assert_refused(result, emulator, "299 px wide")


async def test_a_file_uri_naming_another_machine_is_refused(
    client: Client, emulator: Emulator
) -> None:
    result = await generate(client, "file://fileserver/share/cat.png")
    assert_refused(result, emulator, "fileserver", "this machine")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A valid image in a folder the server may not read."""
    folder = tmp_path / "outside"
    folder.mkdir()
    image = folder / "secret.png"
    image.write_bytes(picture(640, 480))
    return image


async def test_an_image_outside_the_allowed_folders_is_refused(
    client: Client, emulator: Emulator, outside: Path, gallery: Path
) -> None:
    result = await generate(client, str(outside))
    assert_refused(result, emulator, str(outside), "outside the folders", str(gallery.resolve()))


async def test_a_dot_dot_path_cannot_climb_out_of_an_allowed_folder(
    client: Client, emulator: Emulator, outside: Path, gallery: Path
) -> None:
    climbing = f"{gallery}/{'../' * len(gallery.parts)}{str(outside).lstrip('/')}"
    result = await generate(client, climbing)
    assert_refused(result, emulator, "outside the folders")


async def test_a_symlink_escaping_an_allowed_folder_is_refused(
    client: Client, emulator: Emulator, outside: Path, gallery: Path
) -> None:
    link = gallery / "innocent.png"
    link.symlink_to(outside)
    try:
        result = await generate(client, str(link))
    finally:
        link.unlink()
    assert_refused(result, emulator, str(link), "resolves to", str(outside.resolve()))


async def test_a_symlinked_folder_escaping_an_allowed_folder_is_refused(
    client: Client, emulator: Emulator, outside: Path, gallery: Path
) -> None:
    link = gallery / "elsewhere"
    link.symlink_to(outside.parent, target_is_directory=True)
    try:
        result = await generate(client, str(link / outside.name))
    finally:
        link.unlink()
    assert_refused(result, emulator, "outside the folders", str(outside.resolve()))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("cat.png", "relative path", id="relative"),
        pytest.param("{gallery}/missing.png", "no file at", id="missing"),
        pytest.param("{gallery}", "not a regular file", id="folder"),
        pytest.param("ftp://example.com/cat.png", "ftp: URLs are not supported", id="ftp"),
        pytest.param("data:image/png;base64,iVBORw0KGgo=", "data: URLs", id="data-uri"),
        pytest.param("http://", "no host name", id="no-host"),
    ],
)
async def test_an_unusable_image_reference_is_refused(
    client: Client, emulator: Emulator, gallery: Path, value: str, expected: str
) -> None:
    result = await generate(client, value.format(gallery=gallery))
    assert_refused(result, emulator, expected)


async def test_with_no_allowed_folders_local_files_are_refused(
    emulator: Emulator, tmp_path: Path, gallery: Path
) -> None:
    settings = make_settings(emulator, tmp_path, HAILUO_EXPECTED_SECONDS="77")
    settings = settings.model_copy(update={"image_dirs": ()})
    async with Client(build_server(settings)) as client:
        result = await generate(client, str(gallery / "png-300.png"))
    assert_refused(result, emulator, "HAILUO_IMAGE_DIRS is empty")


async def test_a_refused_upload_says_so_and_offers_a_url_instead(
    client: Client, emulator: Emulator, gallery: Path
) -> None:
    emulator.add_fault(Fault("upload", "status", status=403))
    result = await generate(client, str(gallery / "png-300.png"))
    assert result.is_error
    text = text_of(result)
    assert "image_url" in text and "Insufficient plan level" in text and "http(s) URL" in text
    assert emulator.creates() == 0


# URLs that cannot be read from here: a warning, and PiAPI decides


async def assert_warned_and_created(
    client: Client, emulator: Emulator, image_url: str, *expected: str
) -> None:
    result = await generate(client, image_url)
    task = created_task(result, emulator)
    assert task["input"]["image_url"] == image_url
    warnings = (result.structured_content or {})["warnings"]
    assert len(warnings) == 1 and "image_url" in warnings[0]
    for fragment in expected:
        assert fragment in warnings[0]
    assert warnings[0] in text_of(result)


async def test_an_unreachable_image_url_is_passed_on_with_a_warning(
    client: Client, emulator: Emulator
) -> None:
    await assert_warned_and_created(
        client, emulator, "http://127.0.0.1:9/cat.png", "ConnectError", "unchecked"
    )


@pytest.mark.parametrize("code", [404, 410])
async def test_an_image_url_its_host_says_is_gone_is_refused_before_any_create(
    client: Client, emulator: Emulator, image_host: ImageHost, code: int
) -> None:
    result = await generate(client, f"{image_host.url}/status/{code}/cat.png")
    assert_refused(result, emulator, f"HTTP {code}")


async def test_an_image_url_failing_for_a_passing_reason_is_passed_on_with_a_warning(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    await assert_warned_and_created(
        client, emulator, f"{image_host.url}/status/503/cat.png", "HTTP 503"
    )


@pytest.mark.parametrize("name", ["cat.gif", "cat.WEBP", "scan.bmp", "scan.tif", "scan.tiff"])
async def test_an_unreadable_image_url_naming_a_refused_format_is_still_refused(
    client: Client, emulator: Emulator, image_host: ImageHost, name: str
) -> None:
    result = await generate(client, f"{image_host.url}/status/503/{name}")
    assert_refused(result, emulator, "JPG or PNG")


async def test_a_silent_image_host_costs_at_most_the_probe_budget(
    emulator: Emulator, tmp_path: Path, gallery: Path, image_host: ImageHost
) -> None:
    settings = make_settings(
        emulator,
        tmp_path,
        HAILUO_IMAGE_DIRS=str(gallery),
        HAILUO_EXPECTED_SECONDS="77",
        HAILUO_REQUEST_TIMEOUT="0.3",
    )
    async with Client(build_server(settings)) as client:
        await assert_warned_and_created(
            client, emulator, f"{image_host.url}/hang.png", "no answer within 0.3 s"
        )


async def test_an_image_whose_header_lies_beyond_the_first_bytes_is_passed_on_with_a_warning(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    await assert_warned_and_created(
        client, emulator, image_host.file("header-far.png"), "no image header in its first"
    )


async def test_an_image_of_unknown_size_is_checked_and_the_size_limit_noted(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    await assert_warned_and_created(
        client, emulator, f"{image_host.url}/stream/10mib.png", "20 MB limit was not checked"
    )


async def test_an_image_served_without_a_length_is_still_measured_and_refused(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    result = await generate(client, f"{image_host.url}/stream/png-w299.png")
    assert_refused(result, emulator, "299 px wide")


async def test_a_host_ignoring_range_is_read_only_in_part_and_measured_by_its_length(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    result = await generate(client, f"{image_host.url}/plain/20mib-plus-1.png")
    assert_refused(result, emulator, "20,971,521 bytes")
    accepted = await generate(client, f"{image_host.url}/plain/10mib.png")
    assert created_task(accepted, emulator)
    assert (accepted.structured_content or {})["warnings"] == []


async def test_a_web_page_instead_of_an_image_is_refused(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    result = await generate(client, f"{image_host.url}/page")
    assert_refused(result, emulator, "not a JPG or PNG image")


# Redirects and what the image host sees


def redirects(host: ImageHost, hops: int, target: str) -> str:
    return f"{host.url}/redirect/{hops}?to={target}"


async def test_up_to_three_redirects_are_followed_and_the_image_checked(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    result = await generate(client, redirects(image_host, 3, "/files/png-w299.png"))
    assert_refused(result, emulator, "299 px wide")


async def test_a_redirect_chain_longer_than_three_is_not_followed_and_is_passed_on_warned(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    before = len(image_host.seen)
    url = redirects(image_host, 4, "/files/png-w299.png")
    await assert_warned_and_created(client, emulator, url, "redirects more than 3 times")
    # The emulator follows the chain itself later; we made exactly 4 requests.
    ours = [h for h in image_host.seen[before:] if "hailuo-mcp" in h.get("user-agent", "")]
    assert len(ours) == 4


async def test_a_redirect_to_another_scheme_is_refused(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    result = await generate(client, redirects(image_host, 1, "ftp://example.com/cat.png"))
    assert_refused(result, emulator, "ftp://example.com/cat.png", "only http and https")


async def test_the_image_host_gets_a_bounded_range_request_and_never_the_api_key(
    client: Client, emulator: Emulator, image_host: ImageHost
) -> None:
    before = len(image_host.seen)
    result = await generate(client, image_host.file("20mib-plus-1.png"))
    assert_refused(result, emulator, "20,971,521 bytes")
    (request,) = [h for h in image_host.seen[before:] if "hailuo-mcp" in h.get("user-agent", "")]
    assert request["range"] == "bytes=0-524287"
    assert "x-api-key" not in request and all(KEY not in v for v in request.values())


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/cat.png",
        "http://localhost/cat.png",
        "http://10.1.2.3/cat.png",
        "http://192.168.0.10/cat.png",
        "http://[::1]/cat.png",
        "http://169.254.169.254/latest/meta-data",
    ],
)
async def test_a_private_image_address_is_refused_when_piapi_is_remote(
    tmp_path: Path, url: str
) -> None:
    # PiAPI fetches images from its own servers: it cannot reach this machine's network, and
    # the server must not probe it on an assistant's behalf either.
    settings = Settings.from_env(
        {
            "PIAPI_API_KEY": KEY,
            "PIAPI_BASE_URL": "https://api.piapi.ai",
            "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
            "HAILUO_STATE_DIR": str(tmp_path / "state"),
        }
    )
    async with Client(build_server(settings)) as client:
        result = await client.call_tool(
            "generate_video", {"prompt": "x", "model": "v2.3-fast", "image_url": url}
        )
    assert result.is_error
    assert "image_url" in text_of(result) and "PiAPI cannot reach" in text_of(result)


# The gate's own HTTP client, as the lifespan opens it


@pytest.fixture
async def gate(settings: Settings) -> AsyncIterator[ImageGate]:
    async with PiAPIClient(settings) as piapi, ImageGate(settings, piapi) as checks:
        yield checks


async def test_an_open_gate_probes_without_the_key_and_keeps_no_cookie_between_probes(
    gate: ImageGate, image_host: ImageHost
) -> None:
    before = len(image_host.seen)
    request = VideoRequest(prompt="x", image_url=f"{image_host.url}/cookie/png-300.png")
    warnings: list[str] = []
    for _ in range(2):
        assert await gate.prepare(request, warnings.append) == request
    first, second = image_host.seen[before:]
    assert "cookie" not in second  # the host set one on the first probe
    for headers in (first, second):
        assert "x-api-key" not in headers and all(KEY not in v for v in headers.values())
        assert headers["user-agent"] == "hailuo-mcp"
    assert warnings == []


async def test_an_open_gate_refuses_a_broken_rule_and_uploads_a_local_image(
    gate: ImageGate, image_host: ImageHost, emulator: Emulator, gallery: Path
) -> None:
    with pytest.raises(InputError, match="299 px wide; the minimum is 300 px"):
        await gate.prepare(VideoRequest(prompt="x", image_url=image_host.file("png-w299.png")))
    local = VideoRequest(prompt="x", image_url=str(gallery / "png-300.png"))
    uploaded = await gate.prepare(local)
    assert (uploaded.image_url or "").startswith(f"{emulator.url}/ephemeral/uploads/")
    assert uploads(emulator) == 1 and emulator.creates() == 0
