"""Progress and cancellation over Streamable HTTP, as over stdio: both protocol eras, with
sessions (the default) and stateless (HAILUO_HTTP_STATELESS=1, for replicas without sticky
routing).

Probe tools registered on the real server report progress and wait; the real app runs in
uvicorn on loopback and the MCP Python SDK client calls it over HTTP. The server runs on another
thread, so what its tool saw comes back through threading events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from starlette.types import ASGIApp

from hailuo_mcp.config import Settings
from hailuo_mcp.http_app import build_http_app
from hailuo_mcp.server import build_server
from tests.servers import mcp_over_http

TOKEN = "hm-transport-token-2b4d6f8a1c3e5a7c"
MODES = ["legacy", "auto"]
TRANSPORTS = [{}, {"HAILUO_HTTP_STATELESS": "1"}]
TRANSPORT_IDS = ["sessions", "stateless"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Probe:
    """What the server-side tools saw, readable from the test's thread."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.ended = threading.Event()
        self.finished_normally = False


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def serve_hailuo(
    tmp_path: Path, serve_app: Callable[[ASGIApp], str], probe: Probe
) -> Callable[..., str]:
    def serve(**env: str) -> str:
        settings = Settings.from_env(
            {
                "HAILUO_DEMO": "1",
                "HAILUO_STATE_DIR": str(tmp_path / "state"),
                "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
                "HAILUO_IMAGE_DIRS": str(tmp_path),
                "HAILUO_HTTP_TOKEN": TOKEN,
                **env,
            }
        )
        server = build_server(settings)

        @server.tool(name="count_to_three")
        async def count_to_three(ctx: Context) -> str:
            for step in (1, 2, 3):
                await ctx.report_progress(step, 3, f"step {step}")
            return "three"

        @server.tool(name="wait_long")
        async def wait_long(ctx: Context) -> str:
            await ctx.report_progress(1, 2, "waiting")
            probe.waiting.set()
            try:
                await anyio.sleep(30)
                probe.finished_normally = True
            finally:
                probe.ended.set()
            return "waited"

        return serve_app(build_http_app(server, settings, "127.0.0.1", 0))

    return serve


@pytest.mark.parametrize("env", TRANSPORTS, ids=TRANSPORT_IDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.anyio
async def test_progress_notifications_reach_the_client_over_http(
    serve_hailuo: Callable[..., str], mode: str, env: dict[str, str]
) -> None:
    url = serve_hailuo(**env)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    with anyio.fail_after(15):
        async with mcp_over_http(url, token=TOKEN, mode=mode) as client:
            result = await client.call_tool("count_to_three", {}, progress_callback=on_progress)
    assert not result.is_error
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


async def cancel_after_progress(client: Client) -> None:
    """Call wait_long and cancel the call once its first progress notification arrives."""
    progressed = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progressed.set()

    async with anyio.create_task_group() as group:

        async def call() -> None:
            await client.call_tool("wait_long", {}, progress_callback=on_progress)

        group.start_soon(call)
        await progressed.wait()
        group.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("mode", "env"),
    [("legacy", {}), ("auto", {}), ("auto", {"HAILUO_HTTP_STATELESS": "1"})],
    ids=["legacy-sessions", "auto-sessions", "auto-stateless"],
)
@pytest.mark.anyio
async def test_a_cancelled_call_cancels_the_tool_on_the_server_at_once(
    serve_hailuo: Callable[..., str], probe: Probe, mode: str, env: dict[str, str]
) -> None:
    url = serve_hailuo(**env)
    with anyio.fail_after(15):
        async with mcp_over_http(url, token=TOKEN, mode=mode) as client:
            await cancel_after_progress(client)
            # The tool's `finally` ran while the client is still connected: its task was
            # cancelled (2025-11-25: notifications/cancelled; 2026-07-28: the closed stream).
            assert await anyio.to_thread.run_sync(probe.ended.wait, 10)
    assert probe.waiting.is_set() and not probe.finished_normally


@pytest.mark.anyio
async def test_stateless_2025_11_25_cancels_the_tool_only_when_the_client_disconnects(
    serve_hailuo: Callable[..., str], probe: Probe
) -> None:
    # Stateless, the notifications/cancelled POST reaches a transport that does not know the
    # request (on replicas, maybe another process): only the dropped connection stops it.
    url = serve_hailuo(HAILUO_HTTP_STATELESS="1")
    with anyio.fail_after(15):
        async with mcp_over_http(url, token=TOKEN, mode="legacy") as client:
            await cancel_after_progress(client)
            assert not await anyio.to_thread.run_sync(probe.ended.wait, 0.5)
        assert await anyio.to_thread.run_sync(probe.ended.wait, 10)
    assert not probe.finished_normally


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.anyio
async def test_a_real_tool_call_works_stateless(
    serve_hailuo: Callable[..., str], mode: str
) -> None:
    url = serve_hailuo(HAILUO_HTTP_STATELESS="1")
    with anyio.fail_after(15):
        async with mcp_over_http(url, token=TOKEN, mode=mode) as client:
            estimate = await client.call_tool("estimate_cost", {"model": "v2.3", "duration": 6})
            tasks = await client.call_tool("list_tasks", {})
    assert not estimate.is_error and not tasks.is_error
    assert estimate.structured_content is not None and "usd" in estimate.structured_content
