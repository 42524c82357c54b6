"""Serving the emulator with uvicorn: in a background thread for tests, or blocking for the CLI.

Tests start and stop many emulators, so ``_Server`` trims uvicorn's fixed waits: it checks
``should_exit`` every 10 ms instead of 100 ms and shuts down without the fixed 100 ms pause.
On shutdown, requests still open after ``SETTLE_S`` (a client that stopped reading a
download) have their connections aborted, so a stop never waits on a client.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

EXIT_POLL_S = 0.01
SETTLE_S = 0.25
GRACE_S = 2.0
START_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server with fast exit polling and a shutdown hook."""

    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def main_loop(self) -> None:
        polls = 0
        while not self.should_exit:
            await asyncio.sleep(EXIT_POLL_S)
            polls += 1
            # uvicorn's own tick (date header, request limits) expects a 100 ms cadence.
            if polls % 10 == 0 and await self.on_tick(polls // 10):
                break

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Hangs and streams watch this flag and end within a poll interval.
        self._before_shutdown()
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        for connection in list(state.connections):
            connection.shutdown()
        await self._wait(lambda: bool(state.connections or state.tasks), SETTLE_S)
        # A client that stopped reading keeps a response blocked on back-pressure, and a
        # graceful close would wait to flush to it forever: abort those connections.
        for connection in list(state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        await self._wait(lambda: bool(state.tasks), GRACE_S)
        for task in list(state.tasks):
            task.cancel(msg="emulator shutting down")
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()

    @staticmethod
    async def _wait(busy: Callable[[], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while busy() and loop.time() < deadline:
            await asyncio.sleep(0.002)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket first, so the port (even port 0) is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # listener says TCP, and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _uvicorn_config(app: ASGIApp) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        # log_config=None: never let uvicorn reconfigure the process's logging.
        log_config=None,
        access_log=False,
        lifespan="on",
        http="h11",
        ws="none",
        loop="asyncio",
    )


class ServerThread:
    """uvicorn serving one app on a loopback port in a daemon thread."""

    def __init__(self, app: ASGIApp, sock: socket.socket, before_shutdown: Callable[[], None]):
        self._sock = sock
        self._server = _Server(_uvicorn_config(app), before_shutdown)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"piapi-emulator-{sock.getsockname()[1]}",
            daemon=True,
        )

    def start(self) -> None:
        """Start serving; return once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                self._sock.close()
                raise RuntimeError("the PiAPI emulator did not start")
            time.sleep(0.001)

    def stop(self, timeout: float = GRACE_S + 3.0) -> None:
        """Ask the server to exit and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("PiAPI emulator thread did not stop within %.1f s", timeout)
        self._sock.close()


def run_blocking(app: ASGIApp, sock: socket.socket, before_shutdown: Callable[[], None]) -> None:
    """Serve ``app`` on ``sock`` in this thread until SIGINT/SIGTERM."""
    _Server(_uvicorn_config(app), before_shutdown).run(sockets=[sock])
