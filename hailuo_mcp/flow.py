"""The generation flow, top to bottom, as named steps.

    generate:  prepare → create and record → wait → conclude (save, or track in background)
    lookup:    the ledger's answer if the task ended → get → record → wait → conclude

No MCP here: tools call `VideoService` and turn its results and errors into tool results.
Whatever happens after a create, the task is not lost: `after_create` names it in every error
and hands it to background tracking when the call is cancelled (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from hailuo_mcp.answers import answer, ended_answer, failed_error, not_yours
from hailuo_mcp.callers import LOCAL, Caller
from hailuo_mcp.config import Settings
from hailuo_mcp.errors import HailuoError, StorageError
from hailuo_mcp.history import TimingHistory
from hailuo_mcp.leases import LeaseKeeper
from hailuo_mcp.ledger import TaskLedger, TaskRecord
from hailuo_mcp.models import Task, TaskStatus, VideoRequest
from hailuo_mcp.piapi import PiAPIClient, missing_key_error
from hailuo_mcp.placement import place_on_schedule
from hailuo_mcp.prepare import (
    ImageCheck,
    Prepared,
    check_task_id,
    checked_file_name,
    prepare,
    price_of,
)
from hailuo_mcp.progress import Progress, silent
from hailuo_mcp.results import VideoResult
from hailuo_mcp.saving import Downloader, VideoSaver
from hailuo_mcp.spending import Balance, CostGuard, SpendingSummary, wall_clock
from hailuo_mcp.tracking import Tracker
from hailuo_mcp.watch import TaskNews

logger = logging.getLogger(__name__)

# Shown for a demo task the emulator forgot when the demo server restarted.
DEMO_LOST = "the built-in emulator restarted, so this emulated task was lost (nothing charged)"


class VideoService:
    """Runs generations against one PiAPI client and one ledger, for one caller at a time.

    The service the lifespan opens answers the local caller with the server's key;
    `for_caller` gives the same service answering another principal (callers.py).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: PiAPIClient,
        ledger: TaskLedger,
        downloader: Downloader,
        image_check: ImageCheck | None = None,
        tracker: Tracker | None = None,
        news: TaskNews | None = None,
        webhooks: bool = False,
        leases: LeaseKeeper | None = None,
        clock: Callable[[], float] = wall_clock,
    ) -> None:
        self._settings = settings
        self._client = client
        self._ledger = ledger
        self._image_check = image_check
        self._tracker = tracker
        self._news = news or TaskNews()
        # PiAPI posts each task's end to our receiver: polling is the safety net only.
        self._webhooks = webhooks
        # Epoch seconds: "today" for caps and spend; injected by tests that cross midnight.
        self._clock = clock
        self._guard = CostGuard(settings, ledger, clock)
        self._history = TimingHistory.for_expected(ledger, settings.expected_seconds)
        self._saver = VideoSaver(settings, ledger, downloader, leases)
        self._caller = LOCAL

    def for_caller(self, caller: Caller) -> VideoService:
        """This service answering `caller`: its own tasks only, paid with its key if it sent one.

        Everything else (ledger, tracker, locks, leases) is shared: a copy, not a new service.
        """
        if caller == self._caller:
            return self
        scoped = copy.copy(self)
        scoped._caller = caller
        if caller.piapi_key is not None:
            scoped._client = self._client.with_key(caller.piapi_key)
        return scoped

    @property
    def owner(self) -> str:
        """The principal this service answers, and whose rows it writes."""
        return self._caller.owner

    @property
    def ledger(self) -> TaskLedger:
        """The ledger this service records to."""
        return self._ledger

    @property
    def news(self) -> TaskNews:
        """Where snapshots of tasks are published (polls now; webhooks can publish too)."""
        return self._news

    # The two stories

    async def generate(
        self,
        request: VideoRequest,
        *,
        wait_seconds: float | None = None,
        progress: Progress | None = None,
        allow_duplicate: bool = False,
        file_name: str | None = None,
    ) -> VideoResult:
        """Create one task and follow it until done or the wait budget is spent.

        The same request made in the last 10 minutes returns that task instead (unless
        `allow_duplicate`); a call past a spending cap is refused before anything is sent.
        """
        progress = progress or silent()
        self._require_upstream()
        price = price_of(request, self._settings)
        file_name = checked_file_name(file_name)
        owner = self.owner
        if not allow_duplicate and (earlier := await self._guard.duplicate_of(request, owner)):
            return await self._same_as(earlier, wait_seconds, progress)
        await self._guard.within_caps(price.usd, owner)
        short = self._guard.balance_warning(price.usd, owner)
        prepared = await prepare(
            request,
            self._settings,
            image_check=self._image_check,
            progress=progress,
            local_files=self._caller.is_local,
        )
        task = await self._create_and_record(
            prepared, progress, image_source=request.image_url, file_name=file_name
        )
        budget = self._settings.wait_seconds if wait_seconds is None else wait_seconds
        async with self.after_create(task.task_id):
            task, waited = await self._wait(task, budget, progress, created_here=True)
            result = await self._conclude(task, waited, progress)
        warnings = [*prepared.warnings, *([short] if short else [])]
        if warnings:
            result = result.model_copy(update={"warnings": warnings})
        return result

    async def lookup(
        self,
        task_id: str,
        *,
        wait_seconds: float = 0.0,
        progress: Progress | None = None,
        refresh_url: bool = False,
    ) -> VideoResult:
        """Current state of a task (ours or created elsewhere), optionally waiting for it.

        `refresh_url` asks PiAPI again even for a saved video, for a fresh (unexpired) URL.
        """
        progress = progress or silent()
        self._settings.check()
        check_task_id(task_id)
        known = await self._ledger.get(task_id)
        if known is not None and known.owner != self.owner:
            raise not_yours(task_id)
        fresh_url_wanted = refresh_url and known is not None and known.video_url is not None
        if (
            known is not None
            and not fresh_url_wanted
            and (ended := ended_answer(known, self._settings))
        ):
            return ended
        self._require_upstream()
        progress.say("checking the task")
        async with self.after_create(task_id):
            task = await self._client.get(task_id)
            self._news.publish(task)
            if known is None:
                if await self._ledger.record_imported(task, owner=self.owner):
                    self._took(task_id)
                elif (now := await self._ledger.get(task_id)) and now.owner != self.owner:
                    raise not_yours(task_id)  # another caller recorded it a moment ago
            else:
                await self._ledger.record_seen(task)
            task, waited = await self._wait(task, wait_seconds, progress, created_here=False)
            return await self._conclude(task, waited, progress)

    # The steps

    def _require_upstream(self) -> None:
        """Refuse before any upstream call when the configuration cannot make one."""
        self._settings.check()
        if not self._client.has_key:
            raise missing_key_error()

    async def _same_as(
        self, earlier: TaskRecord, wait_seconds: float | None, progress: Progress
    ) -> VideoResult:
        """The earlier task made from the same request, followed like get_task would."""
        budget = self._settings.wait_seconds if wait_seconds is None else wait_seconds
        minutes = max(1, round((self._clock() - earlier.created_at) / 60))
        note = (
            f"The same request (prompt, model, duration, resolution and image) was made "
            f"{minutes} min ago as task {earlier.task_id}: this is that task, and nothing new "
            "was created or charged. Pass allow_duplicate=true to pay for another video."
        )
        logger.info("generate_video repeats task %s: no new create", earlier.task_id)
        result = await self.lookup(earlier.task_id, wait_seconds=budget, progress=progress)
        return result.model_copy(update={"warnings": [note, *result.warnings]})

    async def balance(self) -> Balance:
        """The account's balance now (GET /account/info); remembered for the cover warning."""
        self._require_upstream()
        balance = Balance.from_account(await self._client.account(), self._clock())
        self._guard.saw_balance(balance, self.owner)
        return balance

    async def spending(self) -> SpendingSummary:
        """This caller's spend from the ledger: today, this month, all time."""
        return await self._guard.spending(self.owner)

    async def _create_and_record(
        self,
        prepared: Prepared,
        progress: Progress,
        *,
        image_source: str | None,
        file_name: str | None,
    ) -> Task:
        """Journal the attempt, send the one create, and record the task before anything else."""
        request = prepared.request
        attempt = await self._ledger.record_attempt(request.upstream_input(), owner=self.owner)
        progress.say("creating the task")
        try:
            task = await self._client.create(request)
        except HailuoError as exc:
            await self._ledger.record_attempt_failed(attempt, exc.kind, exc.message)
            raise
        try:
            await self._ledger.record_created(
                task,
                request,
                prepared.price,
                attempt_id=attempt,
                image_source=image_source,
                file_name=file_name,
                owner=self.owner,
            )
        except HailuoError as exc:
            logger.error("task %s was created but not recorded: %s", task.task_id, exc.message)
            raise exc.with_task(task.task_id) from exc
        self._took(task.task_id)
        logger.info(
            "created task %s (%s, %ss, %sp)",
            task.task_id,
            request.model,
            request.duration,
            request.resolution,
        )
        return task

    async def _wait(
        self, task: Task, budget: float, progress: Progress, *, created_here: bool
    ) -> tuple[Task, float]:
        """Follow the task's snapshots until it ends or the budget is spent, recording changes."""
        schedule = await place_on_schedule(
            task,
            ledger=self._ledger,
            history=self._history,
            settings=self._settings,
            safety_net=self._webhooks,
            created_here=created_here,
        )
        progress.follow(task.task_id, task.status.value, schedule.expected_s)
        with self._news.follow(
            task,
            fetch=self._client.get,
            schedule=schedule,
            budget=budget,
            created_here=created_here,
        ) as feed:
            while not task.status.is_terminal:
                fresh = await feed.next()
                if fresh is None:
                    break
                if fresh.status != task.status:
                    progress.say(fresh.status.value)
                    await self._ledger.record_seen(fresh)
                task = fresh
            return task, feed.elapsed

    async def _conclude(self, task: Task, waited: float, progress: Progress) -> VideoResult:
        """What the last snapshot means: an error, a saved video, or a task still running."""
        if task.status == TaskStatus.FAILED:
            await self._release(task.task_id)
            raise failed_error(task)
        if task.status == TaskStatus.COMPLETED:
            progress.say("completed, saving the video")
            path = await self.save_video(task)
            if path is not None:
                await progress.finish(f"saved {path.name} · task {task.task_id}")
        elif not task.status.is_terminal:
            # The budget is spent: the task is paid for, so it is followed on after the answer.
            self.track_in_background(task.task_id)
        return await self._answer(task.task_id, waited)

    async def _answer(self, task_id: str, waited: float) -> VideoResult:
        record = await self._ledger.get(task_id)
        if record is None:
            raise StorageError("the task ledger has no row for this task", task_id=task_id)
        return answer(record, self._settings, waited=waited)

    @asynccontextmanager
    async def after_create(self, task_id: str) -> AsyncIterator[None]:
        """Whatever happens inside, the task is not lost.

        Any error names the task, even a bug's. A cancel, which usually means the client gave
        up waiting, hands the task to background tracking: it is paid for, and its video is
        still saved.
        """
        try:
            yield
        except HailuoError as exc:
            exc.with_task(task_id)
            raise
        except anyio.get_cancelled_exc_class():
            logger.info("task %s: the call was cancelled; following it in the background", task_id)
            self.track_in_background(task_id)
            raise
        except Exception as exc:
            logger.exception("task %s: unexpected failure", task_id)
            raise HailuoError(
                f"Internal error ({type(exc).__name__}) after the task was created; it is "
                "recorded and followed: call get_task to check it.",
                task_id=task_id,
            ) from exc

    # Saving

    async def save_video(self, task: Task) -> Path | None:
        """Download a completed task's video once and record its path (saving.py)."""
        return await self._saver.save(task)

    def _took(self, task_id: str) -> None:
        self._saver.took(task_id)

    async def _release(self, task_id: str) -> None:
        await self._saver.release(task_id)

    # Background tracking

    def track_in_background(self, task_id: str) -> None:
        """Keep following a task after its tool call returned, so the video is still saved."""
        if self._tracker is None:
            logger.warning("task %s: no background tracker; get_task will finish it", task_id)
            return
        self._tracker.start(task_id, self._follow_in_background)

    async def _follow_in_background(self, task_id: str) -> None:
        budget = max(600.0, 20 * self._settings.expected_seconds)
        try:
            if not await self._saver.claim(task_id):
                logger.info("task %s is followed by another replica", task_id)
                return
            record = await self._ledger.get(task_id)
            # Start from what the ledger knows: the feed decides when to look (honouring any
            # Retry-After PiAPI gave the call that handed the task over).
            task = Task(
                task_id=task_id,
                status=record.status if record else TaskStatus.UNKNOWN,
                video_url=record.video_url if record else None,
            )
            if task.status != TaskStatus.COMPLETED or not task.video_url:
                task, _ = await self._wait(task, budget, silent(), created_here=False)
            if task.status == TaskStatus.COMPLETED:
                await self.save_video(task)
                return
            if task.status.is_terminal:
                await self._release(task_id)
                return
        except HailuoError as exc:
            logger.info("background tracking of %s ended: %s", task_id, exc.message)
        # Not followed to its end (the ledger or PiAPI failed, or the budget ran out): stop
        # renewing its lease, so that once it expires a replica, this one too, follows it again.
        self._saver.let_go(task_id)

    async def recent(self, limit: int, status: TaskStatus | None) -> list[TaskRecord]:
        """This caller's recent ledger rows, newest first."""
        return await self._ledger.recent(limit, status, owner=self.owner)

    async def own_record(self, task_id: str) -> TaskRecord | None:
        """The ledger row of one of this caller's tasks; None for anyone else's."""
        return await self._ledger.get(task_id, owner=self.owner)

    def result_from_record(self, record: TaskRecord, *, waited: float = 0.0) -> VideoResult:
        """The answer about a task, from its ledger row."""
        return answer(record, self._settings, waited=waited)
