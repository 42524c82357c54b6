"""Test plumbing: serve any ASGI app (image host, webhook receiver, our HTTP app) on loopback.

The tests' own helper, so they do not lean on the emulator's runner: uvicorn in a daemon
thread on port 0, started and stopped within bounded times.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
# Open connections (a stream nobody reads) get this long before their requests are cancelled.
GRACEFUL_S = 1.0
EXIT_POLL_S = 0.01


class _Server(uvicorn.Server):
    """uvicorn, noticing a stop request within 10 ms and stopping without its fixed pauses."""

    async def main_loop(self) -> None:
        ticks = 0
        # on_tick refreshes the Date header on every tenth call and says when to stop.
        while not await self.on_tick(ticks):
            await asyncio.sleep(EXIT_POLL_S)
            ticks += 1

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own shutdown sleeps 100 ms and then polls every 100 ms; tests stop
        # servers by the dozen, so poll at EXIT_POLL_S and cancel what is left after GRACEFUL_S.
        for server in self.servers:
            server.close()
        state = self.server_state
        for connection in list(state.connections):
            connection.shutdown()
        deadline = time.monotonic() + GRACEFUL_S
        while (state.connections or state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(EXIT_POLL_S)
        for task in list(state.tasks):
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` on a random loopback port for the block; yields ``http://127.0.0.1:PORT``.

    Raises:
        RuntimeError: the server did not start, or did not stop, in time.
    """
    config = uvicorn.Config(
        app,
        host=LOOPBACK,
        port=0,
        log_config=None,  # never let uvicorn reconfigure the test run's logging
        access_log=False,
        lifespan="on",
        http="h11",
        ws="none",
        loop="asyncio",
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.001)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
    if thread.is_alive():
        raise RuntimeError(f"the test server did not stop within {STOP_TIMEOUT_S} s")


@asynccontextmanager
async def mcp_over_http(
    url: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    mode: str = "legacy",
    read_s: float = 60.0,
) -> AsyncIterator[Client]:
    """The MCP Python SDK client on `url`/mcp (streamable HTTP), with a bearer token and any
    other headers on every request; `mode` "legacy" is 2025-11-25, "auto" 2026-07-28."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    http = httpx2.AsyncClient(
        headers=sent, timeout=httpx2.Timeout(10, read=read_s), trust_env=False
    )
    async with (
        http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client
