"""Work the server loop does besides answering requests: the ticker and image checks.

The ticker wakes every ``TICK_S`` real seconds and starts the webhook attempts that are due
on the emulated clock. Everything here lives inside the app's lifespan, so it starts and
stops with the server and nothing runs at import time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import httpx

from hailuo_mcp.emulator.image_rules import check_image_bytes, fetch_image
from hailuo_mcp.emulator.state import DueWebhook, State
from hailuo_mcp.emulator.webhook_delivery import deliver

logger = logging.getLogger(__name__)

TICK_S = 0.02
UPLOADS_PATH = "/ephemeral/uploads/"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds; pay it once per process, on first use,
    # not once per emulator (tests start hundreds).
    return ssl.create_default_context()


class Background:
    """The ticker, the outgoing HTTP client and the tasks spawned by requests."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """Run the ticker for as long as the server runs; close the HTTP client after."""
        ticker = asyncio.create_task(self._tick_forever(), name="emulator-ticker")
        try:
            yield
        finally:
            ticker.cancel()
            pending = [ticker, *self._tasks]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The outgoing HTTP client, made on first use."""
        if self._client is None:
            # trust_env=False: a proxy from the environment must never sit between the
            # emulator and loopback webhooks or images.
            self._client = httpx.AsyncClient(
                verify=_tls_context(), trust_env=False, follow_redirects=True
            )
        return self._client

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, keeping a reference so it is not collected."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("emulator background task failed", exc_info=task.exception())

    async def _tick_forever(self) -> None:
        while True:
            for due in self.state.due_webhooks():
                self.spawn(self._deliver(due))
            await asyncio.sleep(TICK_S)

    async def _deliver(self, due: DueWebhook) -> None:
        status: int | None = None
        try:
            status = await deliver(self.client, due, self.state.config.webhook_timeout_s)
        finally:
            # Also on cancellation, so a delivery never stays "in flight" forever.
            self.state.webhook_result(due, status)

    async def check_image(self, task_id: str, url: str) -> None:
        """Fetch a task's ``image_url``, apply the image rules, and store the verdict."""
        verdict: str | None = "image check did not finish"
        try:
            data: bytes | str | None = self._own_upload(url)
            if data is None:
                data = await asyncio.wait_for(
                    fetch_image(self.client, url), self.state.config.image_fetch_timeout_s
                )
            if isinstance(data, str):
                verdict = data
            else:
                verdict = await asyncio.to_thread(check_image_bytes, data)
        except TimeoutError:
            verdict = "image_url could not be fetched (timed out)"
        except ImportError:
            logger.warning("Pillow is not installed; image rules are not checked")
            verdict = None
        finally:
            self.state.finish_image_check(task_id, verdict)

    def _own_upload(self, url: str) -> bytes | None:
        # Files uploaded to this emulator are read from memory instead of over HTTP.
        prefix = self.state.base_url + UPLOADS_PATH
        if not url.startswith(prefix):
            return None
        stored = self.state.uploaded_file(url[len(prefix) :])
        return stored[0] if stored is not None else None
