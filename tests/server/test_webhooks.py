"""PiAPI's webhooks end the wait the moment a task ends; polling stays the safety net.

The emulator delivers webhooks like PiAPI (secret verbatim in `x-webhook-secret`, retries on a
non-2xx answer) to the receiver the server runs on HAILUO_WEBHOOK_LISTEN.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from starlette.types import ASGIApp

from hailuo_mcp.config import Settings
from hailuo_mcp.emulator import Emulator
from hailuo_mcp.http_app import build_http_app
from hailuo_mcp.ledger import open_ledger_sync
from hailuo_mcp.server import build_server
from hailuo_mcp.webhooks import WEBHOOK_PATH
from tests.support import KEY, make_settings, text_of

# Tasks end 2.1 s after their create (1 s queued, 20 s generating, at 10x).
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.emulator(clock=10, fixed_durations=(1.0, 20.0), seed=3),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhook_settings(emulator: Emulator, tmp_path: Path, **env: str) -> Settings:
    port = free_port()
    return make_settings(
        emulator,
        tmp_path,
        HAILUO_PUBLIC_URL=f"http://127.0.0.1:{port}",
        HAILUO_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
        **env,
    )


def secret_of(settings: Settings) -> str:
    return (settings.state_dir / "webhook-secret").read_text().strip()


async def test_a_webhook_ends_the_wait_before_any_poll_would(
    emulator: Emulator, tmp_path: Path
) -> None:
    # The schedule expects 300 s: its first poll is 9 s away, the task ends at 2.1 s.
    settings = webhook_settings(emulator, tmp_path, HAILUO_EXPECTED_SECONDS="300")
    async with Client(build_server(settings)) as client:
        started = time.monotonic()
        with anyio.fail_after(30):
            result = await client.call_tool("generate_video", {"prompt": "x"})
        took = time.monotonic() - started
    assert not result.is_error, text_of(result)
    data = result.structured_content or {}
    assert Path(data["video_path"]).is_file()
    assert took < 8.0
    assert emulator.gets(data["task_id"]) == 0  # the webhook alone said it was done
    (task,) = [emulator.task(t) for t in emulator.task_ids()]
    endpoint = task["config"]["webhook_config"]["endpoint"]
    assert endpoint == f"{settings.public_url}{WEBHOOK_PATH}"
    (delivery,) = emulator.webhook_deliveries
    assert delivery.status_code == 200


async def test_the_secret_is_made_once_private_and_kept_across_restarts(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = webhook_settings(emulator, tmp_path)
    for _ in range(2):
        async with Client(build_server(settings)) as client:
            await client.call_tool("list_tasks", {})
    path = settings.state_dir / "webhook-secret"
    assert path.stat().st_mode & 0o077 == 0
    secret = secret_of(settings)
    assert len(secret) >= 32
    assert secret not in caplog.text


async def post(settings: Settings, body: dict[str, Any], secret: str | None) -> httpx.Response:
    headers = {"x-webhook-secret": secret} if secret is not None else {}
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.post(
            f"{settings.public_url}{WEBHOOK_PATH}", content=json.dumps(body), headers=headers
        )


def delivery(task_id: str, status: str, **data: Any) -> dict[str, Any]:
    return {
        "timestamp": 1700000000,
        "data": {"task_id": task_id, "model": "hailuo", "status": status, **data},
    }


async def test_a_delivery_without_the_secret_is_refused_and_changes_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = webhook_settings(emulator, tmp_path)
    async with Client(build_server(settings)) as client:
        await client.call_tool("list_tasks", {})
        for secret in (None, "wrong", secret_of(settings)[:-1]):
            answer = await post(settings, delivery("t-forged", "completed"), secret)
            assert answer.status_code == 401
        listed = await client.call_tool("list_tasks", {})
    assert (listed.structured_content or {})["count"] == 0


async def test_a_repeated_delivery_is_dropped_and_an_unknown_task_is_imported(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = webhook_settings(emulator, tmp_path, HAILUO_RESUME="0")
    async with Client(build_server(settings)) as client:
        await client.call_tool("list_tasks", {})
        body = delivery("t-elsewhere", "failed", error={"code": 1, "message": f"bad {KEY}"})
        first = await post(settings, body, secret_of(settings))
        again = await post(settings, body, secret_of(settings))
        garbage = await post(settings, {"timestamp": 1, "data": "nope"}, secret_of(settings))
    assert first.status_code == 200 and first.json() == {"ok": True}
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert garbage.status_code == 400
    with open_ledger_sync(settings.ledger_path) as conn:
        (row,) = [dict(r) for r in conn.execute("SELECT * FROM tasks")]
    assert (row["task_id"], row["origin"], row["status"]) == ("t-elsewhere", "imported", "failed")
    assert KEY not in row["error_message"]  # an echoed key never reaches the ledger


async def saved_path(settings: Settings, task_id: str, *, within: float) -> str:
    """The video path the ledger records for the task, once it records one."""
    with anyio.fail_after(within):
        while True:
            with open_ledger_sync(settings.ledger_path) as conn:
                (path,) = conn.execute(
                    "SELECT video_path FROM tasks WHERE task_id = ?", (task_id,)
                ).fetchone()
            if path:
                return str(path)
            await anyio.sleep(0.05)


async def test_a_task_finished_while_nobody_waits_is_saved_on_its_webhook(
    emulator: Emulator, tmp_path: Path
) -> None:
    # wait_seconds=0: the call returns at once; the background follow's first poll is far off
    # (300 s expected), so the video is saved because the webhook came.
    settings = webhook_settings(emulator, tmp_path, HAILUO_EXPECTED_SECONDS="300")
    async with Client(build_server(settings)) as client:
        started = await client.call_tool("generate_video", {"prompt": "x", "wait_seconds": 0})
        task_id = (started.structured_content or {})["task_id"]
        path = await saved_path(settings, task_id, within=20)
    assert Path(path).is_file()
    assert emulator.gets(task_id) == 0


async def test_without_a_public_url_nothing_listens_and_creates_carry_no_webhook(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path)
    async with Client(build_server(settings)) as client:
        await client.call_tool("generate_video", {"prompt": "x", "wait_seconds": 0})
    (task_id,) = emulator.task_ids()
    # PiAPI (and the emulator) echo an empty webhook_config when the create sent none.
    sent = emulator.task(task_id)["config"].get("webhook_config") or {}
    assert not sent.get("endpoint")
    assert not (settings.state_dir / "webhook-secret").exists()


async def test_over_http_the_receiver_is_a_route_of_the_app_that_needs_no_bearer_token(
    emulator: Emulator, tmp_path: Path, serve_app: Callable[[ASGIApp], str]
) -> None:
    settings = make_settings(
        emulator,
        tmp_path,
        HAILUO_HTTP_TOKEN="tok-" + "x" * 30,
        HAILUO_PUBLIC_URL="https://mcp.example.com",
    )
    server = build_server(settings, listen_for_webhooks=False)
    url = serve_app(build_http_app(server, settings, "127.0.0.1", 0))
    secret = secret_of_after_start(settings, url)
    async with httpx.AsyncClient(timeout=5) as http:
        refused = await http.post(f"{url}/mcp", json={})
        forged = await http.post(f"{url}{WEBHOOK_PATH}", content=b"{}")
        taken = await http.post(
            f"{url}{WEBHOOK_PATH}",
            content=json.dumps(delivery("t-http", "processing")),
            headers={"x-webhook-secret": secret},
        )
    assert refused.status_code == 401  # the MCP endpoint still needs the token
    assert forged.status_code == 401  # the receiver needs the webhook secret instead
    assert taken.status_code == 200, taken.text
    with open_ledger_sync(settings.ledger_path) as conn:
        rows = [r[0] for r in conn.execute("SELECT task_id FROM tasks")]
    assert rows == ["t-http"]


def secret_of_after_start(settings: Settings, url: str) -> str:
    """The secret, once the app's lifespan (which makes it) has run."""
    deadline = time.monotonic() + 10
    path = settings.state_dir / "webhook-secret"
    while not path.exists():
        assert time.monotonic() < deadline, "the app never opened its runtime"
        time.sleep(0.02)
    return path.read_text().strip()


async def test_a_waiting_call_returns_within_half_a_second_of_the_delivery(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = webhook_settings(emulator, tmp_path, HAILUO_EXPECTED_SECONDS="300")
    delivered_at: list[float] = []

    async def watch_deliveries() -> None:
        while not any(d.status_code == 200 for d in emulator.webhook_deliveries):
            await anyio.sleep(0.005)
        delivered_at.append(time.monotonic())

    async with Client(build_server(settings)) as client, anyio.create_task_group() as group:
        group.start_soon(watch_deliveries)
        with anyio.fail_after(30):
            result = await client.call_tool("generate_video", {"prompt": "x"})
        returned_at = time.monotonic()
    assert not result.is_error, text_of(result)
    (delivered,) = delivered_at
    assert returned_at - delivered < 0.5


async def test_with_webhooks_lost_polling_still_finds_the_video(
    emulator: Emulator, tmp_path: Path
) -> None:
    # PiAPI is told a URL where nothing listens: every delivery fails, the safety net polls.
    settings = make_settings(
        emulator,
        tmp_path,
        HAILUO_PUBLIC_URL=f"http://127.0.0.1:{free_port()}",
        HAILUO_WEBHOOK_LISTEN=f"127.0.0.1:{free_port()}",
        HAILUO_EXPECTED_SECONDS="2.1",
    )
    async with Client(build_server(settings)) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("generate_video", {"prompt": "x"})
    assert not result.is_error, text_of(result)
    assert Path((result.structured_content or {})["video_path"]).is_file()
    assert all(d.status_code is None for d in emulator.webhook_deliveries)


async def test_an_oversized_or_malformed_delivery_is_refused(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = webhook_settings(emulator, tmp_path)
    async with Client(build_server(settings)) as client:
        await client.call_tool("list_tasks", {})
        secret = {"x-webhook-secret": secret_of(settings)}
        url = f"{settings.public_url}{WEBHOOK_PATH}"
        async with httpx.AsyncClient(timeout=5) as http:
            huge = await http.post(url, content=b"{" + b" " * 300_000 + b"}", headers=secret)
            broken = await http.post(url, content=b"{not json", headers=secret)
            not_a_task = await http.post(url, json={"timestamp": 1, "data": {}}, headers=secret)
    assert (huge.status_code, broken.status_code, not_a_task.status_code) == (400, 400, 400)


async def test_a_webhook_for_a_task_another_replica_created_saves_its_video(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Replica A (no webhooks) creates the task; the delivery reaches replica B, which shares
    # the ledger: B saves the video although nobody waits on it there.
    plain = make_settings(emulator, tmp_path, HAILUO_RESUME="0")
    async with Client(build_server(plain)) as a:
        started = await a.call_tool("generate_video", {"prompt": "x", "wait_seconds": 0})
    task_id = (started.structured_content or {})["task_id"]
    emulator.wait_for_status(task_id, "completed", timeout=10)
    settings = webhook_settings(emulator, tmp_path, HAILUO_RESUME="0")
    async with Client(build_server(settings)) as b:
        await b.call_tool("list_tasks", {})
        answer = await post(
            settings, {"timestamp": 2, "data": emulator.task(task_id)}, secret_of(settings)
        )
        assert answer.status_code == 200
        path = await saved_path(settings, task_id, within=10)
    assert Path(path).is_file()
