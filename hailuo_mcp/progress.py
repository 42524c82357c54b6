"""Progress for each tool call: what the flow is doing, said at once and repeated on a clock.

The flow only says what changed (checking the image, creating, a new status, saving). The
server's one `ProgressClock` repeats each call's latest state at least every `interval`
seconds, whatever the flow is awaiting (an upstream request that hangs, a download, a ledger
write), so a client that resets its timeout on progress keeps the call. A change restarts that
call's interval, so a change and a repeat never arrive as a near-duplicate pair.

One clock, not a ticker task per call: a waiting call then costs a small object and a heap
entry instead of a task, a task group and an event (~8 KB each; 1000 calls at once are the
load bench/many_tasks.py measures). Each send still runs in a task of its own, so a client
that reads slowly delays only its own call's progress.

No MCP here: `send` is whatever delivers a notification (the tool passes ctx.report_progress).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio

from hailuo_mcp.polling import progress_percent

logger = logging.getLogger(__name__)

SendFn = Callable[[float, float | None, str], Awaitable[None]]

# Before the task exists the bar creeps up to here; the wait proper fills the rest.
_BEFORE_CREATE_MAX = 2.0


class Progress:
    """The latest state of one call; `say` changes it, its clock sends it."""

    __slots__ = (
        "_send",
        "_interval",
        "_clock",
        "_percent",
        "_last_sent",
        "_closed",
        "_status",
        "_task_id",
        "_expected_s",
        "_wait_started",
        "_due",
        "_changed",
        "_sending",
    )

    def __init__(
        self,
        send: SendFn | None = None,
        *,
        interval: float = 4.0,
        clock: ProgressClock | None = None,
    ) -> None:
        self._send = send
        self._interval = interval
        # Without a clock only `finish` sends (nothing repeats the state).
        self._clock = clock
        self._percent = 0.0
        self._last_sent = time.monotonic()
        self._closed = False
        self._status = "starting"
        self._task_id: str | None = None
        self._expected_s: float | None = None
        self._wait_started: float | None = None
        # When the clock is to send next (its heap may hold older entries: they are skipped).
        self._due = math.inf
        # Changed since the last send began: sent as soon as the send in flight ends.
        self._changed = False
        self._sending: anyio.CancelScope | None = None
        self._schedule(self._last_sent + interval)

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
        """A new state, sent at once (a no-op when it did not change)."""
        if status != self._status:
            self._status = status
            self._changed = True
            if self._sending is None:
                self._schedule(time.monotonic())

    async def finish(self, message: str) -> None:
        """The last notification (100 %); nothing is sent after it."""
        if not self.enabled:
            return
        self._closed = True  # from here on the clock sends nothing, even if this send hangs
        self._stop_sending()
        await self._deliver(100.0, message)

    def close(self) -> None:
        """Send nothing more (the call ended, or was cancelled)."""
        self._closed = True
        self._stop_sending()

    def take_due(self, when: float) -> bool:
        """Whether a clock entry for `when` is still this call's next send; it is taken if so."""
        if not self.enabled or when != self._due:
            return False
        self._due = math.inf
        return True

    async def send_now(self) -> None:
        """One send of the current state (the clock runs it in a task of its own)."""
        if not self.enabled or self._sending is not None:
            return
        self._changed = False
        try:
            with anyio.CancelScope() as scope:
                self._sending = scope
                await self._deliver(self._next_percent(), self._message())
        except Exception:
            # A bug in a send must not reach the clock, which serves every call.
            logger.exception("a progress notification failed; no more progress for this call")
            self._closed = True
        finally:
            self._sending = None
        if self.enabled:
            self._schedule(time.monotonic() if self._changed else self._last_sent + self._interval)

    def _schedule(self, when: float) -> None:
        if self._clock is not None and self.enabled:
            self._due = when
            self._clock.due(self, when)

    def _stop_sending(self) -> None:
        if self._sending is not None:
            self._sending.cancel()

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
        self._percent = percent
        self._last_sent = time.monotonic()
        try:
            await self._send(percent, 100.0, message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # The client went away: the flow carries on and the ledger keeps the task.
            self._closed = True


class ProgressClock:
    """Sends every call's progress when it is due, from one task (`run`, in the lifespan)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Progress]] = []
        self._order = itertools.count()  # breaks ties: Progress objects do not compare
        self._wake = anyio.Event()

    def start(self, send: SendFn, *, interval: float) -> Progress:
        """A Progress for one call: its state is repeated every `interval` seconds of silence."""
        return Progress(send, interval=interval, clock=self)

    def due(self, progress: Progress, when: float) -> None:
        """Send `progress` at `when` (monotonic seconds)."""
        heapq.heappush(self._heap, (when, next(self._order), progress))
        if self._heap[0][2] is progress:
            self._wake.set()  # sooner than what the clock sleeps until

    async def run(self) -> None:
        """Start each due send in a task of its own; sleep until the next one or a change."""
        async with anyio.create_task_group() as sends:
            while True:
                self._wake = anyio.Event()
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    when, _, progress = heapq.heappop(self._heap)
                    if progress.take_due(when):
                        sends.start_soon(progress.send_now)
                wait = self._heap[0][0] - now if self._heap else math.inf
                with anyio.move_on_after(wait):
                    await self._wake.wait()


@contextmanager
def reporting(clock: ProgressClock, send: SendFn, *, interval: float) -> Iterator[Progress]:
    """A Progress `clock` sends for the duration of the block (one tool call)."""
    progress = clock.start(send, interval=interval)
    try:
        yield progress
    finally:
        progress.close()


def silent() -> Progress:
    """A Progress that sends nothing (background tracking, resumed tasks)."""
    return Progress(None)
