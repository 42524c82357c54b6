"""Image checks: a task whose image breaks a rule of PiAPI's Hailuo page fails, naming it."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from hailuo_mcp.emulator import Emulator

pytestmark = pytest.mark.emulator(clock=10_000)


def picture(width: int, height: int, image_format: str = "PNG") -> bytes:
    """A solid-colour image of the given size and format."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format=image_format)
    return buffer.getvalue()


def upload(client: httpx.Client, emulator: Emulator, data: bytes, file_name: str) -> str:
    """Upload ``data`` to the emulator and return its URL."""
    body = {"file_name": file_name, "file_data": base64.b64encode(data).decode()}
    response = client.post(emulator.upload_url, json=body)
    assert response.status_code == 200, response.text
    url: str = response.json()["data"]["url"]
    return url


def run_task(client: httpx.Client, emulator: Emulator, image_url: str) -> dict[str, Any]:
    """Create an image-to-video task and wait until it ends."""
    payload = {
        "model": "hailuo",
        "task_type": "video_generation",
        "input": {"prompt": "the cat turns its head", "model": "v2.3-fast", "image_url": image_url},
    }
    response = client.post("/api/v1/task", json=payload)
    assert response.status_code == 200, response.text
    return emulator.wait_for_status(response.json()["data"]["task_id"])


BROKEN = [
    pytest.param(299, 400, "PNG", "image width 299 px is below the 300 px minimum", id="w299"),
    pytest.param(400, 299, "PNG", "image height 299 px is below the 300 px minimum", id="h299"),
    pytest.param(4097, 2000, "PNG", "image width 4097 px is above the 4096 px maximum", id="w4097"),
    pytest.param(300, 751, "PNG", "aspect ratio 300:751 is outside the 2:5 to 5:2", id="2:5-"),
    pytest.param(751, 300, "PNG", "aspect ratio 751:300 is outside the 2:5 to 5:2", id="5:2+"),
    pytest.param(400, 400, "GIF", "image format GIF is not supported (JPG or PNG only)", id="gif"),
    pytest.param(400, 400, "WEBP", "image format WEBP is not supported", id="webp"),
]


@pytest.mark.parametrize(("width", "height", "image_format", "message"), BROKEN)
def test_an_image_breaking_a_rule_fails_the_task_with_the_rule_in_the_error(
    emulator: Emulator,
    emulator_client: httpx.Client,
    width: int,
    height: int,
    image_format: str,
    message: str,
) -> None:
    url = upload(emulator_client, emulator, picture(width, height, image_format), "in.png")
    task = run_task(emulator_client, emulator, url)
    assert task["status"] == "failed"
    error = task["error"]
    assert message in error["message"]
    assert message in error["raw_message"]
    assert error["code"] != 0
    assert task["meta"]["started_at"] == "0001-01-01T00:00:00Z"  # it never started
    assert task["meta"]["usage"] == {"type": "llm", "frozen": 0, "consume": 0}
    assert task["output"] is None


ACCEPTED = [
    pytest.param(300, 300, "PNG", id="300-square"),
    pytest.param(300, 750, "PNG", id="exactly-2:5"),
    pytest.param(750, 300, "PNG", id="exactly-5:2"),
    pytest.param(4096, 1700, "PNG", id="4096-wide"),
    pytest.param(640, 480, "JPEG", id="jpeg"),
]


@pytest.mark.parametrize(("width", "height", "image_format"), ACCEPTED)
def test_an_image_inside_every_rule_lets_the_task_complete(
    emulator: Emulator, emulator_client: httpx.Client, width: int, height: int, image_format: str
) -> None:
    url = upload(emulator_client, emulator, picture(width, height, image_format), "in.jpg")
    assert run_task(emulator_client, emulator, url)["status"] == "completed"


def test_bytes_that_are_no_image_fail_the_task(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    url = upload(emulator_client, emulator, b"\x89PNG\r\n\x1a\n but not really", "fake.png")
    task = run_task(emulator_client, emulator, url)
    assert task["status"] == "failed"
    assert "could not be read" in str(task["error"])


@pytest.fixture
def image_host(serve_app: Callable[[ASGIApp], str]) -> str:
    """A static host: /ok.png (300 px), /huge.png (just over 20 MB), anything else 404."""
    files = {"/ok.png": picture(300, 300), "/huge.png": bytes(20 * 1024 * 1024 + 1)}

    async def serve_file(request: Request) -> Response:
        data = files.get(request.url.path)
        if data is None:
            return Response(b"gone", 404)
        return Response(data, media_type="image/png")

    return serve_app(Starlette(routes=[Route("/{name}", serve_file)]))


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/ok.png", "completed", ""),
        ("/missing.png", "failed", "image_url could not be fetched (HTTP 404)"),
        ("/huge.png", "failed", "above the 20 MB maximum"),
    ],
)
def test_an_image_on_another_host_is_fetched_over_http_and_checked(
    emulator: Emulator,
    emulator_client: httpx.Client,
    image_host: str,
    path: str,
    status: str,
    message: str,
) -> None:
    task = run_task(emulator_client, emulator, image_host + path)
    assert task["status"] == status
    assert message in str(task["error"])


def test_an_unreachable_image_host_fails_the_task(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    task = run_task(emulator_client, emulator, "http://127.0.0.1:9/cat.png")
    assert task["status"] == "failed"
    assert "could not be fetched" in str(task["error"])


def test_a_task_waits_pending_while_its_image_is_checked(
    emulator_client: httpx.Client, emulator: Emulator, serve_app: Callable[[ASGIApp], str]
) -> None:
    release = threading.Event()

    async def slow_image(request: Request) -> Response:
        # Answer once the test has looked at the task (at most 5 s).
        for _ in range(1000):
            if release.is_set():
                break
            await asyncio.sleep(0.005)
        return Response(picture(300, 300), media_type="image/png")

    host = serve_app(Starlette(routes=[Route("/slow.png", slow_image)]))
    payload = {
        "model": "hailuo",
        "task_type": "video_generation",
        "input": {"prompt": "p", "image_url": f"{host}/slow.png"},
    }
    task_id = emulator_client.post("/api/v1/task", json=payload).json()["data"]["task_id"]
    emulator.advance(1000)  # far past queue + generation: the image check still holds it
    assert emulator.task(task_id)["status"] == "pending"
    release.set()
    assert emulator.wait_for_status(task_id)["status"] == "completed"


@pytest.mark.emulator(clock=10_000, check_images=False, seed=None)
def test_image_checks_can_be_switched_off(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    url = upload(emulator_client, emulator, picture(299, 400), "small.png")
    assert run_task(emulator_client, emulator, url)["status"] == "completed"
