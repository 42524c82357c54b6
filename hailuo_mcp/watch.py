"""Following a task: a stream of its snapshots, fed by polls and by anything that hears of it.

`TaskNews` is where news of a task arrives: every poll answer is published there (and a webhook
or another replica can publish too), and every wait on that task wakes at once. `TaskNews.follow`
gives one wait its `TaskFeed`: `next()` returns the next snapshot, from news or from its own
poll, whichever comes first, or None when the budget is spent. When to poll is the pure
decision of `PollSchedule`; progress has its own clock (progress.py), so nothing here stalls it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from hailuo_mcp.errors import RetryableError, TaskNotFoundError
from hailuo_mcp.models import Task
from hailuo_mcp.polling import PollSchedule

logger = logging.getLogger(__name__)

Fetch = Callable[[str], Awaitable[Task]]

# A task seen missing this many times in a row right after its create is really missing
# (PiAPI may answer 404 for a moment before the new task is readable).
NOT_FOUND_TOLERANCE = 3
# The last look before a wait budget ends comes this long before it (at most; a share of short
# budgets): a task that finished since the previous poll is reported done, not "processing".
FINAL_LOOK_S = 2.0
FINAL_LOOK_SHARE = 0.25
# News a slow wait has not read yet is dropped beyond this: it polls anyway.
_NEWS_BUFFER = 8


@dataclass(eq=False)
class _Listener:
    send: MemoryObjectSendStream[Task]
    receive: MemoryObjectReceiveStream[Task]


class TaskNews:
    """Where snapshots of tasks are published; every wait on a task hears each one."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[_Listener]] = {}
        # PiAPI's Retry-After per task, so a wait that starts later (background tracking after
        # the call's budget ran out) honours what an earlier one was told.
        self._quiet_until: dict[str, float] = {}

    def pause(self, task_id: str, seconds: float) -> None:
        """PiAPI asked not to be asked about this task for `seconds`."""
        self._quiet_until[task_id] = max(self.quiet_until(task_id), time.monotonic() + seconds)

    def quiet_until(self, task_id: str) -> float:
        """The monotonic time before which this task is not polled (0 when free)."""
        until = self._quiet_until.get(task_id, 0.0)
        if until and until <= time.monotonic():
            self._quiet_until.pop(task_id, None)
            return 0.0
        return until

    @contextmanager
    def follow(
        self, task: Task, *, fetch: Fetch, schedule: PollSchedule, budget: float, created_here: bool
    ) -> Iterator[TaskFeed]:
        """A feed of `task`'s snapshots for the duration of the block."""
        send, receive = anyio.create_memory_object_stream[Task](_NEWS_BUFFER)
        listener = _Listener(send, receive)
        listeners = self._listeners.setdefault(task.task_id, set())
        listeners.add(listener)
        try:
            yield TaskFeed(
                task,
                fetch=fetch,
                schedule=schedule,
                budget=budget,
                news=self,
                listener=listener,
                created_here=created_here,
            )
        finally:
            listeners.discard(listener)
            if not listeners:
                self._listeners.pop(task.task_id, None)
            send.close()
            receive.close()

    def publish(self, task: Task, *, source: _Listener | None = None) -> None:
        """Tell every wait on this task (but the one that learnt it) what it is now."""
        self._quiet_until.pop(task.task_id, None)  # PiAPI answered again: the pause is over
        for listener in list(self._listeners.get(task.task_id, ())):
            if listener is source:
                continue
            try:
                listener.send.send_nowait(task)
            except anyio.WouldBlock:
                pass  # that wait is behind on news; its own poll catches up

    def listening(self, task_id: str) -> bool:
        """Whether any wait follows this task now."""
        return bool(self._listeners.get(task_id))


class TaskFeed:
    """Snapshots of one task until the budget is spent; the last look just before it ends."""

    def __init__(
        self,
        task: Task,
        *,
        fetch: Fetch,
        schedule: PollSchedule,
        budget: float,
        news: TaskNews,
        listener: _Listener,
        created_here: bool,
    ) -> None:
        self._task_id = task.task_id
        self._fetch = fetch
        self._schedule = schedule
        self._news = news
        self._listener = listener
        self._created_here = created_here
        self._started = time.monotonic()
        self._deadline = self._started + max(0.0, budget)
        self._final_look = self._deadline - min(FINAL_LOOK_S, FINAL_LOOK_SHARE * max(0.0, budget))
        self._failures = 0
        self._retry_after: float | None = None
        self._missing = 0
        self._spent = False

    @property
    def elapsed(self) -> float:
        """Seconds since the wait began."""
        return time.monotonic() - self._started

    async def next(self) -> Task | None:
        """The next snapshot, or None once the budget is spent."""
        while not self._spent:
            now = time.monotonic()
            if now >= self._deadline:
                break
            delay = self._schedule.next_delay(now - self._started)
            if self._failures:
                delay = max(delay, self._schedule.backoff(self._failures, self._retry_after))
            quiet_until = self._news.quiet_until(self._task_id)
            delay = max(delay, quiet_until - now)
            last = now + delay >= self._final_look
            if last and quiet_until > self._final_look:
                break  # PiAPI asked for a longer pause (Retry-After) than the budget has left
            heard = await self._hear(max(0.0, self._final_look - now) if last else delay)
            if heard is not None:
                return self._seen(heard)
            self._spent = last
            fresh = await self._look()
            if fresh is not None:
                return self._seen(fresh)
        self._spent = True
        return None

    async def _hear(self, seconds: float) -> Task | None:
        """Wait up to `seconds` for news of the task; None when none came."""
        with anyio.move_on_after(seconds):
            try:
                return await self._listener.receive.receive()
            except anyio.EndOfStream:
                await anyio.sleep_forever()  # the news closed: only the poll is left
        return None

    async def _look(self) -> Task | None:
        """One GET; a passing failure is counted and retried later, None meanwhile."""
        try:
            with anyio.fail_after(max(0.05, self._deadline - time.monotonic())):
                fresh = await self._fetch(self._task_id)
            self._news.publish(fresh, source=self._listener)
            return fresh
        except TimeoutError:
            self._spent = True
        except RetryableError as exc:
            self._failures += 1
            self._retry_after = exc.retry_after
            if exc.retry_after is not None:
                self._news.pause(self._task_id, exc.retry_after)
            logger.warning("task %s: poll failed (%s), retrying", self._task_id, exc.message)
        except TaskNotFoundError:
            self._missing += 1
            if not self._created_here or self._missing >= NOT_FOUND_TOLERANCE:
                raise
            self._failures += 1
        return None

    def _seen(self, task: Task) -> Task:
        self._failures, self._retry_after, self._missing = 0, None, 0
        self._schedule.observe(self.elapsed, task.status)
        return task
