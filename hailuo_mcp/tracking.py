"""Background tracking: tasks followed after their tool call returned, so videos still get saved.

The task group belongs to the server's lifespan; a task is tracked at most once at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from anyio.abc import TaskGroup

logger = logging.getLogger(__name__)


class Tracker:
    """Starts one background follow per task, in the lifespan's task group."""

    def __init__(self, group: TaskGroup) -> None:
        self._group = group
        self._tracked: set[str] = set()

    def start(self, task_id: str, follow: Callable[[str], Awaitable[None]]) -> None:
        """Follow `task_id` in the background, unless it already is."""
        if task_id in self._tracked:
            return
        self._tracked.add(task_id)
        self._group.start_soon(self._run, task_id, follow, name=f"track {task_id}")

    def tracking(self, task_id: str) -> bool:
        """Whether `task_id` is followed in the background now."""
        return task_id in self._tracked

    async def _run(self, task_id: str, follow: Callable[[str], Awaitable[None]]) -> None:
        try:
            await follow(task_id)
        except Exception:
            # The top of a background task: a bug here must not end the whole server (and
            # every other task it follows). The task stays in the ledger and is resumed later.
            logger.exception("background tracking of %s failed", task_id)
        finally:
            self._tracked.discard(task_id)
