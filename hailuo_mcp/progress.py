"""Progress for one tool call: what the flow is doing, said at once and repeated on a ticker.

The flow only says what changed (checking the image, creating, a new status, saving). A ticker
of its own repeats the latest state at least every `interval` seconds, whatever the flow is
awaiting (an upstream request that hangs, a download, a ledger write), so a client that resets
its timeout on progress keeps the call. A change sent by the flow restarts the ticker's clock,
so a change and a tick never arrive as a near-duplicate pair.

No MCP here: `send` is whatever delivers a notification (the tool passes ctx.report_progress).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from hailuo_mcp.polling import progress_percent

logger = logging.getLogger(__name__)

SendFn = Callable[[float, float | None, str], Awaitable[None]]

# Before the task exists the bar creeps up to here; the wait proper fills the rest.
_BEFORE_CREATE_MAX = 2.0


class Progress:
    """The latest state of one call; `say` changes it, the ticker repeats it."""

    def __init__(self, send: SendFn | None = None, *, interval: float = 4.0) -> None:
        self._send = send
        self._interval = interval
        self._lock = anyio.Lock()
        self._changed = anyio.Event()
        self._percent = 0.0
        self._last_sent = time.monotonic()
        self._closed = False
        self._status = "starting"
        self._task_id: str | None = None
        self._expected_s: float | None = None
        self._wait_started: float | None = None

    @property
    def enabled(self) -> bool:
        """Whether anyone listens (a no-op Progress skips all the work)."""
        return self._send is not None and not self._closed

    def follow(self, task_id: str, status: str, expected_s: float) -> None:
        """The wait on a task begins: percentages now follow its expected duration."""
        self._task_id = task_id
        self._expected_s = expected_s
        if self._wait_started is None:
            self._wait_started = time.monotonic()
        self.say(status)

    def say(self, status: str) -> None:
        """A new state, sent at once by the ticker (a no-op when it did not change)."""
        if status != self._status:
            self._status = status
            self._changed.set()

    async def finish(self, message: str) -> None:
        """The last notification (100 %); nothing is sent after it."""
        if self.enabled:
            await self._deliver(100.0, message)
        self._closed = True

    def close(self) -> None:
        """Send nothing more (the call ended, or was cancelled)."""
        self._closed = True
        self._changed.set()

    def _message(self) -> str:
        if self._task_id is None or self._wait_started is None:
            return self._status
        waited = time.monotonic() - self._wait_started
        usual = f" (usually ~{self._expected_s:.0f}s)" if self._expected_s else ""
        return f"{self._status} · {waited:.0f}s waited{usual} · task {self._task_id}"

    def _next_percent(self) -> float:
        if self._wait_started is not None and self._expected_s:
            share = progress_percent(time.monotonic() - self._wait_started, self._expected_s)
            target = _BEFORE_CREATE_MAX + share * (100 - _BEFORE_CREATE_MAX) / 100
        else:
            target = min(_BEFORE_CREATE_MAX, self._percent + 0.25)
        # Progress must increase with every notification.
        return round(max(self._percent + 0.01, min(target, 99.99)), 2)

    async def _deliver(self, percent: float, message: str) -> None:
        assert self._send is not None
        async with self._lock:
            if self._closed:
                return
            self._percent = percent
            self._last_sent = time.monotonic()
            try:
                await self._send(percent, 100.0, message)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                # The client went away: the flow carries on and the ledger keeps the task.
                self._closed = True

    async def tick_forever(self) -> None:
        """Send the state when it changes, and again whenever `interval` passes in silence."""
        while not self._closed:
            quiet_until = self._last_sent + self._interval
            with anyio.move_on_after(max(0.0, quiet_until - time.monotonic())):
                await self._changed.wait()
            if self._closed:
                return
            self._changed = anyio.Event()
            await self._deliver(self._next_percent(), self._message())


@asynccontextmanager
async def reporting(send: SendFn, *, interval: float) -> AsyncIterator[Progress]:
    """A Progress whose ticker runs for the duration of the block (one tool call)."""
    progress = Progress(send, interval=interval)
    async with anyio.create_task_group() as group:
        group.start_soon(progress.tick_forever)
        try:
            yield progress
        finally:
            progress.close()
            group.cancel_scope.cancel()


def silent() -> Progress:
    """A Progress that sends nothing (background tracking, resumed tasks)."""
    return Progress(None)
