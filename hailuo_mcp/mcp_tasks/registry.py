"""ProtocolTasks: MCP tasks over the ledger, for both eras.

A task is created after the tool's quick part (validation, confirmation, the one create)
returned a PiAPI task still running; its row is written before the CreateTaskResult leaves.
Everything after runs in the lifespan's task group: the service's Tracker follows the PiAPI
task and saves the video (as it does for any call that stopped waiting, and at start-up for
unfinished tasks), and one watcher per MCP task stores the result when that story ends and
tells a 2025-11-25 client its new status. A read (`view`) derives the same from the ledger,
so a server restarted on the same state dir answers for tasks it created before.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import time
from typing import Any, cast

import anyio
from mcp.server.session import ServerSession
from mcp.types import ServerNotification, TaskStatusNotification, TaskStatusNotificationParams

from hailuo_mcp.callers import LOCAL, Caller
from hailuo_mcp.errors import HailuoError
from hailuo_mcp.ledger import ProtocolTaskRecord
from hailuo_mcp.ledger.records import ProtocolTaskStatus
from hailuo_mcp.mcp_tasks import outcome, wire
from hailuo_mcp.mcp_tasks.state import (
    FORGET_AFTER_S,
    TaskView,
    cancel_message,
    expired,
    needs_following,
    new_task_id,
    outcome_of,
    view_of,
)
from hailuo_mcp.runtime import Runtime
from hailuo_mcp.tool_results import video_result

logger = logging.getLogger(__name__)

# Tracker keys of the watchers; a PiAPI task id never has a colon.
_WATCH = "mcp-task:"
# The watcher reads the ledger (never PiAPI) at the poll hint, within these bounds.
_WATCH_MIN_S = 0.02
_WATCH_MAX_S = 2.0
PAGE_SIZE = 50


class TaskGone(Exception):
    """No task answers to this id (never created, expired, or forgotten)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TaskEnded(Exception):
    """The task is already in a terminal status (2025-11-25 refuses to cancel it)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class ProtocolTasks:
    """The MCP tasks of one runtime: create, read, cancel, list, and their watchers."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._service = runtime.service
        self._ledger = self._service.ledger
        self._tracker = runtime.tracker
        # The service's own settings: demo mode's expected time is the emulator's.
        self._base_s = (runtime.served or runtime.settings).expected_seconds
        # Sessions of 2025-11-25 clients that created a task, told when its status changes.
        self._listeners: dict[str, ServerSession] = {}
        self._caller = LOCAL

    def for_caller(self, caller: Caller) -> ProtocolTasks:
        """These tasks as `caller` sees them: its own only (listeners and watchers shared)."""
        if caller == self._caller:
            return self
        scoped = copy.copy(self)
        scoped._caller = caller
        scoped._service = self._runtime.service.for_caller(caller)
        return scoped

    @property
    def runtime(self) -> Runtime:
        """The runtime these tasks live in."""
        return self._runtime

    async def create(
        self,
        *,
        tool: str,
        task_id: str,
        protocol_version: str,
        ttl_ms: int,
        warnings: list[str],
        session: ServerSession | None = None,
    ) -> TaskView:
        """A new working task following PiAPI task `task_id`, durable when this returns."""
        now = time.time()
        await self._ledger.forget_protocol_tasks(now - FORGET_AFTER_S)
        task = ProtocolTaskRecord(
            id=new_task_id(),
            task_id=task_id,
            tool=tool,
            protocol_version=protocol_version,
            status="working",
            ttl_ms=ttl_ms,
            warnings=warnings,
            created_at=now,
            updated_at=now,
            owner=self._caller.owner,
        )
        # Invariant 1 for protocol tasks: the row exists before the client hears of the task.
        await self._ledger.record_protocol_task(task)
        if session is not None:
            self._listeners[task.id] = session
        self._watch(task.id)
        logger.info("MCP task %s follows Hailuo task %s (%s)", task.id, task_id, tool)
        record = await self._ledger.get(task_id)
        return view_of(task, record, base_s=self._base_s, now=now)

    async def view(self, task_id: str) -> TaskView:
        """The task now; concludes it (stores its result) when its PiAPI task's story ended.

        Raises:
            TaskGone: no such task, or its ttl ran out.
        """
        task = await self._task(task_id)
        record = await self._ledger.get(task.task_id)
        if task.status == "working":
            following = self._tracker is not None and self._tracker.tracking(task.task_id)
            ended = outcome_of(record, following=following)
            if ended is None:
                if not following and needs_following(record):
                    # A paid task nobody follows now (a wait budget ran out, or the server
                    # restarted): follow it again so its video is saved.
                    self._service.track_in_background(task.task_id)
                self._watch(task.id)
                return view_of(task, record, base_s=self._base_s)
            result, error, message = await outcome.final(ended, record, task, self._runtime)
            status: ProtocolTaskStatus = "failed" if error is not None else "completed"
            await self._ledger.record_protocol_outcome(
                task.id, status, status_message=message, result=result, error=error
            )
            # Reread: a cancel that came first keeps the task cancelled.
            task = await self._task(task_id)
        return view_of(task, record, base_s=self._base_s)

    async def cancel(self, task_id: str) -> TaskView:
        """Cancel the task (the PiAPI task is still followed and its video saved).

        Raises:
            TaskGone: no such task, or its ttl ran out.
            TaskEnded: it had already ended.
        """
        current = await self.view(task_id)
        if current.ended:
            raise TaskEnded(wire.legacy_status(current))
        task = await self._task(task_id)
        await self._ledger.record_protocol_outcome(
            task_id, "cancelled", status_message=cancel_message(task.task_id)
        )
        record = await self._ledger.get(task.task_id)
        if needs_following(record):
            self._service.track_in_background(task.task_id)
        logger.info(
            "MCP task %s cancelled; Hailuo task %s is still followed", task_id, task.task_id
        )
        return await self.view(task_id)

    async def wait_ended(self, task_id: str) -> TaskView:
        """The task once it ended (tasks/result blocks on this; it reads only the ledger)."""
        while True:
            view = await self.view(task_id)
            if view.ended:
                return view
            await anyio.sleep(_interval(view))

    async def page(self, cursor: str | None) -> tuple[list[TaskView], str | None]:
        """One page of tasks, newest first, and the cursor of the next one.

        Raises:
            ValueError: the cursor is not one this server gave.
        """
        after = _read_cursor(cursor) if cursor is not None else None
        rows = await self._ledger.protocol_tasks(PAGE_SIZE, after=after, owner=self._caller.owner)
        views = []
        for row in rows:
            try:
                views.append(await self.view(row.id))
            except TaskGone:
                continue  # expired: not retrievable, so not listed
        last = rows[-1] if len(rows) == PAGE_SIZE else None
        return views, _cursor(last) if last is not None else None

    async def current_result(self, task_id: str) -> dict[str, Any]:
        """The tool's answer about a cancelled task now (its PiAPI task may still run)."""
        task = await self._task(task_id)
        record = await self._ledger.get(task.task_id)
        if record is None:
            raise TaskGone("Failed to retrieve task: its Hailuo task is not in the ledger")
        answer = self._service.result_from_record(record)
        return outcome.dump(video_result(answer))

    async def _task(self, task_id: str) -> ProtocolTaskRecord:
        task = await self._ledger.protocol_task(task_id, owner=self._caller.owner)
        if task is None:
            raise TaskGone("Failed to retrieve task: Task not found")
        if expired(task, time.time()):
            raise TaskGone("Failed to retrieve task: Task has expired")
        return task

    # Watching

    def _watch(self, task_id: str) -> None:
        """Start the task's watcher in the lifespan's task group, unless it runs."""
        if self._tracker is not None:
            self._tracker.start(_WATCH + task_id, self._watcher)

    async def _watcher(self, key: str) -> None:
        task_id = key.removeprefix(_WATCH)
        said = "working"
        try:
            while True:
                try:
                    view = await self.view(task_id)
                except TaskGone:
                    return
                except HailuoError as exc:
                    logger.warning("MCP task %s: the ledger could not be read: %s", task_id, exc)
                    await anyio.sleep(_WATCH_MAX_S)
                    continue
                status = wire.legacy_status(view)
                if status != said:
                    said = status
                    await self._tell(task_id, view)
                if view.ended:
                    return
                await anyio.sleep(_interval(view))
        finally:
            self._listeners.pop(task_id, None)

    async def _tell(self, task_id: str, view: TaskView) -> None:
        """notifications/tasks/status to the 2025-11-25 client that created the task."""
        session = self._listeners.get(task_id)
        if session is None:
            return
        params = TaskStatusNotificationParams.model_validate(wire.task_2025(view))
        notification = TaskStatusNotification(params=params)
        try:
            # The SDK keeps TaskStatusNotification out of its union (it never sends one).
            await session.send_notification(cast(ServerNotification, notification))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            logger.debug("MCP task %s: its client is gone; the status is in tasks/get", task_id)


def _interval(view: TaskView) -> float:
    hint = (view.poll_interval_ms or 1000) / 1000
    return min(_WATCH_MAX_S, max(_WATCH_MIN_S, hint))


def _cursor(task: ProtocolTaskRecord) -> str:
    raw = json.dumps([task.created_at, task.id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _read_cursor(cursor: str) -> tuple[float, str]:
    try:
        created, task_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created), str(task_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a cursor this server gave") from exc
