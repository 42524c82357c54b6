"""LeaseKeeper: which unfinished tasks this replica follows, kept leased in the ledger.

Replicas share one ledger. The holder of a task's lease is the only one that follows it and
saves its video; the keeper renews every lease it holds a few times per lease period, and picks
up the tasks of replicas that died (their leases expired) so that no paid task is left behind.
One process on one machine (stdio with SQLite) runs the same code with one replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from hailuo_mcp.errors import HailuoError
from hailuo_mcp.ledger import TaskLedger, TaskRecord

logger = logging.getLogger(__name__)

# Unfinished tasks older than this are not taken over (PiAPI's outputs expire anyway).
TAKEOVER_MAX_AGE_S = 24 * 3600.0
_ORPHANS_PER_SCAN = 50


class LeaseKeeper:
    """Holds this replica's leases: claim before following, renew while following, release."""

    def __init__(self, ledger: TaskLedger, lease_s: float) -> None:
        self._ledger = ledger
        self._lease_s = lease_s
        self._held: set[str] = set()

    @property
    def period_s(self) -> float:
        """How often leases are renewed and orphans looked for: four times a lease."""
        return self._lease_s / 4

    def holds(self, task_id: str) -> bool:
        """Whether this replica holds the task's lease (as far as it knows)."""
        return task_id in self._held

    def took(self, task_id: str) -> None:
        """The ledger leased `task_id` to this replica (a create or an import did)."""
        self._held.add(task_id)

    async def claim(self, task_id: str) -> bool:
        """Take the task's lease unless another live replica holds it."""
        if await self._ledger.claim(task_id):
            self._held.add(task_id)
            return True
        self._held.discard(task_id)
        return False

    def let_go(self, task_id: str) -> None:
        """Stop renewing the task's lease without a ledger write (the ledger may be down): it
        expires within a lease period and `claim_orphans` hands it out again."""
        self._held.discard(task_id)

    async def release(self, task_id: str) -> None:
        """The task was followed to its end here: nobody needs to hold it any more."""
        self._held.discard(task_id)
        await self._ledger.release(task_id)

    async def release_all(self) -> None:
        """The replica is stopping cleanly: hand every task it holds on at once, rather than
        after its leases expire."""
        for task_id in sorted(self._held):
            try:
                await self.release(task_id)
            except HailuoError as exc:
                logger.warning("could not release task %s: %s", task_id, exc.message)
                return  # the ledger is gone: the leases expire on their own

    async def take_over(self, follow: Callable[[TaskRecord], None], limit: int) -> int:
        """Lease and follow up to `limit` recent unfinished tasks that no live replica holds
        (at start-up: this replica's own from before a crash, too); returns how many."""
        rows = await self._ledger.claim_orphans(TAKEOVER_MAX_AGE_S, limit)
        for row in rows:
            self._held.add(row.task_id)
            follow(row)
        if rows:
            logger.info("following %d unfinished task(s) no replica followed", len(rows))
        return len(rows)

    async def run(self, follow: Callable[[TaskRecord], None], *, take_over: bool) -> None:
        """Renew held leases and (with `take_over`) follow the tasks of dead replicas; forever."""
        while True:
            await anyio.sleep(self.period_s)
            try:
                await self._renew()
                if take_over:
                    await self.take_over(follow, _ORPHANS_PER_SCAN)
            except HailuoError as exc:
                # The ledger is unreachable for a moment (a database restart): try again.
                logger.warning("could not renew task leases: %s", exc.message)

    async def _renew(self) -> None:
        if not self._held:
            return
        wanted = sorted(self._held)
        kept = await self._ledger.renew(wanted)
        # Only those still held: one released while the renewal was under way was not lost.
        for task_id in (set(wanted) - kept) & self._held:
            # Another replica took it (ours expired during a stall): let it finish the task.
            logger.warning("lost the lease on task %s to another replica", task_id)
            self._held.discard(task_id)
