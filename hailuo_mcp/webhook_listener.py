"""In stdio mode, the webhook receiver listens on its own port (HAILUO_WEBHOOK_LISTEN).

It runs inside the server's event loop, in the lifespan's task group, so it ends with the
server. It never prints (stdout is the protocol's) and never takes over the process's signals.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Generator

import anyio
import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: SIGINT and SIGTERM stay the MCP server's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket | None:
    """A listening socket, or None (with a warning) when the address cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        logger.warning(
            "webhooks off: cannot listen on %s:%s (%s); set HAILUO_WEBHOOK_LISTEN to a free "
            "address. Polling alone still finds every video.",
            host,
            port,
            exc.strerror or exc,
        )
        return None
    return sock


async def listen(app: ASGIApp, sock: socket.socket) -> None:
    """Serve `app` on `sock` until cancelled, then shut down gracefully (within ~1 s)."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = _QuietServer(config)
    host, port = sock.getsockname()[:2]
    logger.info("webhook receiver listening on %s:%s", host, port)

    async def serve() -> None:
        # Shielded: a cancel must not cut open connections mid-way (they would leak); the
        # server stops through should_exit instead, closing them.
        with anyio.CancelScope(shield=True):
            await server.serve(sockets=[sock])

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            try:
                await anyio.sleep_forever()
            finally:
                server.should_exit = True
    finally:
        sock.close()
