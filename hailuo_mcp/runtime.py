"""The server's shared resources, opened in the background so start-up stays fast.

The MCP lifespan enters a Runtime before the `initialize` answer; opening the HTTP client, the
ledger (and, in demo mode, the emulator) happens in a background task, and the first tool call
waits for it. That task starts on the first tool call that needs it, or once start-up has
settled (to resume unfinished tasks), so its imports never delay the `initialize` answer.
Nothing heavy is imported until then.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from pydantic import SecretStr

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import HailuoError, StorageError

if TYPE_CHECKING:
    from hailuo_mcp.flow import VideoService

logger = logging.getLogger(__name__)

# Bounds the wait of a tool call for the resources to open (invariant 4).
_OPEN_TIMEOUT_S = 60.0
# Without a tool call, open this long after the lifespan starts: by then a client that sent
# `initialize` at spawn has its answer (see docs/PERFORMANCE.md, cold start).
_SETTLE_S = 0.5


class Runtime:
    """Holds the VideoService once it is open; `await runtime.service()` from tools."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ready = anyio.Event()
        self._wanted = anyio.Event()
        self._service: VideoService | None = None
        self._error: HailuoError | None = None
        self._stack = AsyncExitStack()
        self._resources = AsyncExitStack()
        self._task_group: TaskGroup | None = None

    async def __aenter__(self) -> Runtime:
        self._task_group = await self._stack.enter_async_context(anyio.create_task_group())
        self._task_group.start_soon(self._open)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        try:
            await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                await self._resources.aclose()

    async def service(self) -> VideoService:
        """The open service; raises the error that prevented opening it."""
        self._wanted.set()
        with anyio.fail_after(_OPEN_TIMEOUT_S):
            await self._ready.wait()
        if self._error is not None:
            raise self._error
        if self._service is None:
            raise StorageError("The server's resources are closed (it is shutting down).")
        return self._service

    async def _open(self) -> None:
        with anyio.move_on_after(_SETTLE_S):
            await self._wanted.wait()
        try:
            self._service = await self._open_service()
        except HailuoError as exc:
            self._error = exc
            logger.error("could not open the server's resources: %s", exc.message)
        except Exception as exc:
            # Anything else (the demo emulator failing to bind, say) is still told to the
            # tools, which answer it; the session must not die of it.
            logger.exception("could not open the server's resources")
            self._error = StorageError(
                f"The server could not start its resources ({type(exc).__name__}: {exc}); "
                "see its log, fix the cause and restart it."
            )
        finally:
            self._ready.set()
        if self._service is not None and self.settings.resume_on_start:
            try:
                await self._service.resume_unfinished()
            except HailuoError as exc:
                logger.warning("could not resume unfinished tasks: %s", exc.message)

    async def _open_service(self) -> VideoService:
        # Imported here, off the start-up path: httpx, sqlite3 and the flow.
        from hailuo_mcp.flow import DEMO_LOST, VideoService
        from hailuo_mcp.images import ImageGate
        from hailuo_mcp.ledger import Ledger
        from hailuo_mcp.piapi import PiAPIClient

        settings = self.settings
        if settings.demo:
            settings = self._start_demo_upstream(settings)
        client = await self._resources.enter_async_context(PiAPIClient(settings))
        try:
            ledger = await self._resources.enter_async_context(Ledger(settings.ledger_path))
        except OSError as exc:
            raise StorageError(f"cannot open the task ledger: {exc}") from None
        if settings.demo:
            # The emulator keeps its tasks in memory: those it had before a restart are gone.
            lost = await ledger.abandon_unfinished(DEMO_LOST)
            if lost:
                logger.info("demo mode: %d emulated task(s) from before the restart ended", lost)
        gate = ImageGate(settings, client).prepare
        service = VideoService(settings, client, ledger, image_gate=gate)
        assert self._task_group is not None
        service.attach(self._task_group)
        return service

    def _start_demo_upstream(self, settings: Settings) -> Settings:
        """Start the built-in emulator and point the settings at it (no key needed)."""
        from hailuo_mcp.emulator import EmulatorConfig, running_emulator

        speed = settings.demo_speed
        emulator = self._resources.enter_context(
            running_emulator(EmulatorConfig(api_key="demo-key", speed=speed))
        )
        logger.info("demo mode: PiAPI emulator at %s, %gx speed", emulator.url, speed)
        return settings.model_copy(
            update={
                "api_key": SecretStr("demo-key"),
                "base_url": emulator.url,
                "upload_url": emulator.upload_url,
                "expected_seconds": settings.expected_seconds / speed,
                "state_dir": settings.state_dir / "demo",
                # Emulated videos stay apart from real ones.
                "output_dir": settings.output_dir / "demo",
            }
        )
