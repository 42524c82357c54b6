"""The generation flow, top to bottom: validate, estimate, create, record, poll, download, answer.

No MCP here: tools call `VideoService` and turn its results and errors into tool results.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import (
    ConfigurationError,
    HailuoError,
    InputError,
    RetryableError,
    StorageError,
    TaskFailedError,
    TaskNotFoundError,
)
from hailuo_mcp.ledger import Ledger, TaskRecord
from hailuo_mcp.models import Task, TaskStatus, VideoRequest, is_valid_task_id
from hailuo_mcp.piapi import PiAPIClient, missing_key_error
from hailuo_mcp.polling import QUEUE_SHARE, PollSchedule, expected_seconds
from hailuo_mcp.pricing import Estimate, estimate
from hailuo_mcp.progress import Progress, silent
from hailuo_mcp.results import VideoResult

logger = logging.getLogger(__name__)
# Checks the image before any create and returns the request with its final http(s) URL;
# the callback receives a sentence for each check that could not be made (see images.py).
ImageGate = Callable[[VideoRequest, Callable[[str], None]], Awaitable[VideoRequest]]

# Unfinished tasks older than this are not resumed at start-up (outputs expire anyway).
_RESUME_MAX_AGE_S = 24 * 3600.0
# A task seen missing this many times in a row right after its create is really missing.
_NOT_FOUND_TOLERANCE = 3
# The last look before a wait budget ends, this long before it (at most; a share of short
# budgets): a task that finished since the previous poll is reported done, not "processing".
_FINAL_LOOK_S = 2.0
_FINAL_LOOK_SHARE = 0.25
# Shown for a demo task the emulator forgot when the demo server restarted.
DEMO_LOST = "the built-in emulator restarted, so this emulated task was lost (nothing charged)"


def cost_usd(record: TaskRecord, points_per_usd: int) -> float | None:
    """What a task costs: the charged amount once completed, else the price estimate."""
    cost = record.estimate_usd
    if record.status == TaskStatus.COMPLETED and record.consumed_points:
        cost = record.consumed_points / points_per_usd
    return round(cost, 4) if cost is not None else None


class VideoService:
    """Runs generations against one PiAPI client and one ledger."""

    def __init__(
        self,
        settings: Settings,
        client: PiAPIClient,
        ledger: Ledger,
        *,
        image_gate: ImageGate | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._ledger = ledger
        self._image_gate = image_gate
        self._download_locks: dict[str, anyio.Lock] = {}
        self._task_group: TaskGroup | None = None
        self._tracked: set[str] = set()

    @property
    def ledger(self) -> Ledger:
        """The ledger this service writes to."""
        return self._ledger

    def estimate(self, request: VideoRequest) -> Estimate:
        """Price a request from the seed's table."""
        return estimate(
            request.model,
            request.duration,
            request.resolution,
            points_per_usd=self._settings.points_per_usd,
        )

    def check_request(self, request: VideoRequest) -> None:
        """Rules that depend on configuration; raises InputError naming the fields."""
        if (
            request.model == "v2.3-fast"
            and self._settings.fast_requires_image
            and not (request.image_url)
        ):
            raise InputError(
                "model=v2.3-fast is image-to-video only: give image_url, or use model=v2.3 "
                "for text-to-video"
            )
        if request.image_url and self._image_gate is None:
            if not request.image_url.lower().startswith(("http://", "https://")):
                raise InputError("image_url must be an http(s) URL")

    async def generate(
        self,
        request: VideoRequest,
        *,
        wait_seconds: float | None = None,
        progress: Progress | None = None,
    ) -> VideoResult:
        """Create one task and follow it until done or the wait budget is spent."""
        progress = progress or silent()
        self._settings.check()
        if self._settings.api_key is None:
            raise missing_key_error()
        self.check_request(request)
        price = self.estimate(request)
        # Everything that can be checked is checked before anything is paid.
        progress.say("checking the output folder")
        await anyio.to_thread.run_sync(self._check_output_folder)
        warnings: list[str] = []
        if request.image_url and self._image_gate is not None:
            progress.say("checking the image")
            request = await self._image_gate(request, warnings.append)
        attempt = await self._ledger.start_attempt(request.upstream_input())
        progress.say("creating the task")
        try:
            task = await self._client.create(request)
        except HailuoError as exc:
            await self._ledger.finish_attempt(attempt, exc.kind, message=exc.message)
            raise
        # Invariant 1: the id is in the ledger before anything else happens with it.
        try:
            await self._ledger.record_task(
                task.task_id,
                task.status,
                origin="created",
                fields={
                    "prompt": request.prompt,
                    "model": request.model,
                    "duration": request.duration,
                    "resolution": request.resolution,
                    "image_url": request.image_url,
                    "expand_prompt": request.expand_prompt,
                    "estimate_usd": price.usd,
                    "estimate_points": price.points,
                },
                attempt_id=attempt,
            )
        except HailuoError as exc:
            logger.error("task %s was created but not recorded: %s", task.task_id, exc.message)
            raise exc.with_task(task.task_id) from None
        logger.info(
            "created task %s (%s, %ss, %sp)",
            task.task_id,
            request.model,
            request.duration,
            request.resolution,
        )
        budget = self._settings.wait_seconds if wait_seconds is None else wait_seconds
        async with self.after_create(task.task_id):
            result = await self._follow(task, budget, progress, created_here=True)
            return result.model_copy(update={"warnings": warnings}) if warnings else result

    @asynccontextmanager
    async def after_create(self, task_id: str) -> AsyncIterator[None]:
        """Whatever happens inside, the task is not lost.

        Any error names the task (invariant 3), even a bug's. A cancel, which usually means
        the client gave up waiting, hands the task to background tracking: it is paid for and
        its video is still saved (invariant 8).
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

    def _check_output_folder(self) -> None:
        """Create the output folder and prove it writable, before anything is paid."""
        folder = self._settings.output_dir
        probe = folder / f".hailuo-write-check-{secrets.token_hex(4)}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            probe.unlink()
        except OSError as exc:
            raise ConfigurationError(
                f"HAILUO_OUTPUT_DIR: cannot write videos to {folder} ({exc.strerror or exc}). "
                "Set HAILUO_OUTPUT_DIR to a writable folder and restart the server; nothing "
                "was created or charged."
            ) from None

    async def lookup(
        self,
        task_id: str,
        *,
        wait_seconds: float = 0.0,
        progress: Progress | None = None,
    ) -> VideoResult:
        """Current state of a task (ours or created elsewhere), optionally waiting for it."""
        progress = progress or silent()
        self._settings.check()
        if not is_valid_task_id(task_id):
            raise InputError(
                "task_id must be a PiAPI task id (letters, digits, '-' and '_', at most 128 "
                "characters)"
            )
        known = await self._ledger.get(task_id)
        if known is not None and known.status == TaskStatus.COMPLETED and known.video_path:
            if Path(known.video_path).is_file():
                return self.result_from_record(known, waited=0.0)
        if known is not None and known.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            # An ended task never changes: answer from the ledger, without an upstream call.
            if known.status == TaskStatus.FAILED:
                raise TaskFailedError(
                    f"Hailuo could not generate this video: {known.error_message or 'no reason'}"
                    ". Nothing was charged.",
                    task_id=task_id,
                )
            return self.result_from_record(known, waited=0.0)
        if self._settings.api_key is None:
            raise missing_key_error()
        progress.say("checking the task")
        async with self.after_create(task_id):
            task = await self._client.get(task_id)
            if known is None:
                await self._ledger.record_task(
                    task_id, task.status, origin="imported", fields=_fields_from_input(task)
                )
            return await self._follow(task, wait_seconds, progress, created_here=False)

    async def _follow(
        self,
        task: Task,
        budget: float,
        progress: Progress,
        *,
        created_here: bool,
        background: bool = False,
    ) -> VideoResult:
        """Poll until terminal or out of budget; save the video when completed."""
        task_id = task.task_id
        record = await self._ledger.get(task_id)
        expected = self._expected_for(task, record)
        schedule = PollSchedule(expected)
        started = time.monotonic()
        deadline = started + max(0.0, budget)
        final_look = deadline - min(_FINAL_LOOK_S, _FINAL_LOOK_SHARE * max(0.0, budget))
        failures = 0
        retry_after: float | None = None
        missing = 0
        last_status = task.status
        self._seed_schedule(schedule, task, record, created_here=created_here)
        progress.follow(task_id, task.status.value, expected)

        while not task.status.is_terminal:
            now = time.monotonic()
            if now >= deadline:
                break
            delay = schedule.next_delay(now - started)
            if failures:
                delay = max(delay, schedule.backoff(failures, retry_after))
            # Look once more just before the budget ends, rather than report a stale status,
            # unless PiAPI asked for a longer pause (Retry-After) than the budget has left.
            last = now + delay >= final_look
            if last and retry_after is not None and now + retry_after > final_look:
                break
            await anyio.sleep(max(0.0, final_look - now) if last else delay)
            try:
                with anyio.fail_after(max(0.05, deadline - time.monotonic())):
                    fresh = await self._client.get(task_id)
            except TimeoutError:
                break
            except RetryableError as exc:
                failures += 1
                retry_after = exc.retry_after
                logger.warning("task %s: poll failed (%s), retrying", task_id, exc.message)
                if last:
                    break
                continue
            except TaskNotFoundError:
                missing += 1
                if not created_here or missing >= _NOT_FOUND_TOLERANCE:
                    raise
                failures += 1
                if last:
                    break
                continue
            failures, retry_after, missing = 0, None, 0
            task = fresh
            schedule.observe(time.monotonic() - started, task.status)
            if task.status != last_status:
                last_status = task.status
                progress.say(task.status.value)
                await self._ledger.update(task_id, **_status_fields(task))
            if last:
                break
        waited = time.monotonic() - started
        if task.status == TaskStatus.FAILED:
            await self._ledger.update(task_id, **_status_fields(task))
            raise TaskFailedError(
                f"Hailuo could not generate this video: {task.error_message or 'no reason given'}"
                f" (upstream code {task.error_code}). Nothing was charged.",
                task_id=task_id,
                upstream_code=task.error_code,
            )
        if task.status == TaskStatus.COMPLETED:
            await self._ledger.update(task_id, **_status_fields(task))
            progress.say("completed, saving the video")
            path = await self.save_video(task)
            result = await self._recorded_result(task_id, waited)
            await progress.finish(f"saved {path.name} · task {task_id}")
            return result.model_copy(update={"generation_seconds": _generation_seconds(task)})
        if not background:
            self.track_in_background(task_id)
        return await self._recorded_result(task_id, waited)

    async def _recorded_result(self, task_id: str, waited: float) -> VideoResult:
        """The answer about a task, read from its ledger row (written before we got here)."""
        record = await self._ledger.get(task_id)
        if record is None:  # pragma: no cover - every followed task was recorded first
            raise HailuoError("the task ledger lost this task", task_id=task_id)
        return self.result_from_record(record, waited=waited)

    def _seed_schedule(
        self, schedule: PollSchedule, task: Task, record: TaskRecord | None, *, created_here: bool
    ) -> None:
        """Place a task that is already under way on its schedule."""
        if created_here or not task.status.is_started:
            return  # fresh from create, or still queued: the schedule starts from its first look
        if record is not None and record.origin == "created":
            # Our own clock saw the create: the most trustworthy basis.
            since_create = time.time() - record.created_at
            schedule.assume_started(since_create - QUEUE_SHARE * schedule.expected_s, 0.0)
            return
        if task.started_at is not None:
            running = time.time() - task.started_at.timestamp()
            if 0 <= running <= 10 * schedule.expected_s:
                schedule.assume_started(running, 0.0)
                return
        # Unknown start: assume it is midway, which leads straight into the dense window.
        schedule.assume_started(0.6 * schedule.generation_s, 0.0)

    def attach(self, task_group: TaskGroup) -> None:
        """Give the service a task group for background tracking (owned by the server)."""
        self._task_group = task_group

    def track_in_background(self, task_id: str) -> None:
        """Keep polling a task after its tool call returned, so the video is still saved."""
        if self._task_group is None or task_id in self._tracked:
            return
        self._tracked.add(task_id)
        self._task_group.start_soon(self._track, task_id)

    async def _track(self, task_id: str) -> None:
        budget = max(600.0, 20 * self._settings.expected_seconds)
        try:
            try:
                task = await self._client.get(task_id)
            except RetryableError as exc:
                # A passing fault on the first look must not end tracking: the poll loop
                # retries it, starting from a status it does not know yet.
                logger.info("task %s: first look failed (%s), polling on", task_id, exc.message)
                task = Task(task_id=task_id, status=TaskStatus.UNKNOWN)
            await self._follow(task, budget, silent(), created_here=False, background=True)
        except HailuoError as exc:
            logger.info("background tracking of %s ended: %s", task_id, exc.message)
        finally:
            self._tracked.discard(task_id)

    async def resume_unfinished(self) -> int:
        """Track, in the background, every recent task that is unfinished or unsaved."""
        rows = await self._ledger.unfinished(max_age_s=_RESUME_MAX_AGE_S)
        for row in rows:
            self.track_in_background(row.task_id)
        if rows:
            logger.info("resuming %d unfinished task(s)", len(rows))
        return len(rows)

    async def save_video(self, task: Task) -> Path:
        """Download a completed task's video once (per-task lock) and record its path."""
        task_id = task.task_id
        if not task.video_url:
            raise HailuoError(
                "PiAPI reports the task completed but gave no video URL.", task_id=task_id
            )
        lock = self._download_locks.setdefault(task_id, anyio.Lock())
        async with lock:
            record = await self._ledger.get(task_id)
            if record and record.video_path and Path(record.video_path).is_file():
                return Path(record.video_path)
            destination = self._settings.output_dir / f"hailuo-{task_id}.mp4"
            try:
                await self._client.download(task.video_url, destination, task_id=task_id)
            except HailuoError as exc:
                await self._ledger.update(task_id, error_kind=exc.kind, error_message=exc.message)
                if isinstance(exc, StorageError):
                    # The paid video is still upstream for a while: say where.
                    raise StorageError(
                        f"{exc.message} Video URL: {task.video_url}", task_id=task_id
                    ) from exc
                raise
            await self._ledger.update(
                task_id, video_path=str(destination), error_kind=None, error_message=None
            )
            self._download_locks.pop(task_id, None)
            return destination

    async def recent(self, limit: int, status: TaskStatus | None) -> list[TaskRecord]:
        """Recent ledger rows, newest first."""
        return await self._ledger.recent(limit, status)

    def _expected_for(self, task: Task, record: TaskRecord | None) -> float:
        base = self._settings.expected_seconds
        model = (record.model if record and record.model else None) or str(
            task.input.get("model") or "v2.3"
        )
        duration = (record.duration if record and record.duration else None) or _int(
            task.input.get("duration"), 6
        )
        resolution = (record.resolution if record and record.resolution else None) or _int(
            task.input.get("resolution"), 768
        )
        return expected_seconds(base, model, duration, resolution)

    def result_from_record(self, record: TaskRecord, *, waited: float) -> VideoResult:
        """The answer about a task, from its ledger row."""
        emulated = self._settings.demo
        saved = record.video_path is not None
        status = record.status
        if saved:
            next_step = f"The video is saved at {record.video_path}."
        elif status == TaskStatus.COMPLETED:
            next_step = (
                f"The video is ready at video_url; call get_task {record.task_id} to save it."
            )
        elif status.is_terminal:
            reason = f": {record.error_message}" if record.error_message else ""
            next_step = f"The task ended with status {status.value}{reason}."
        else:
            next_step = (
                f"The video is still being generated (status {status.value}). Call get_task "
                f"with task_id={record.task_id} and wait_seconds up to "
                f"{self._settings.wait_seconds:g} to check again; it is saved automatically "
                "when it completes."
            )
        return VideoResult(
            task_id=record.task_id,
            status=status,
            done=saved or status in (TaskStatus.FAILED, TaskStatus.CANCELLED),
            video_path=record.video_path,
            video_url=record.video_url,
            model=record.model,
            duration=record.duration,
            resolution=record.resolution,
            prompt=record.prompt,
            cost_usd=cost_usd(record, self._settings.points_per_usd),
            charged=status == TaskStatus.COMPLETED and not emulated,
            emulated=emulated,
            waited_seconds=round(waited, 2),
            created_at=record.created_iso,
            next_step=next_step,
        )


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _generation_seconds(task: Task) -> float | None:
    if task.started_at and task.ended_at:
        return round((task.ended_at - task.started_at).total_seconds(), 2)
    return None


def _status_fields(task: Task) -> dict[str, object]:
    fields: dict[str, object] = {"status": task.status}
    if task.video_url:
        fields["video_url"] = task.video_url
    if task.consumed_points is not None:
        fields["consumed_points"] = task.consumed_points
    if task.status == TaskStatus.FAILED:
        fields["error_kind"] = "task_failed"
        fields["error_message"] = task.error_message or "no reason given"
    if task.status.is_terminal:
        fields["finished_at"] = time.time()
    for name, value in (
        ("upstream_created_at", task.created_at),
        ("upstream_started_at", task.started_at),
        ("upstream_ended_at", task.ended_at),
    ):
        if value is not None:
            fields[name] = value.isoformat()
    return fields


def _fields_from_input(task: Task) -> dict[str, object]:
    data = task.input
    fields: dict[str, object] = {}
    if isinstance(data.get("prompt"), str):
        fields["prompt"] = data["prompt"]
    if isinstance(data.get("model"), str):
        fields["model"] = data["model"]
    for name in ("duration", "resolution"):
        if isinstance(data.get(name), int):
            fields[name] = data[name]
    if isinstance(data.get("image_url"), str) and data["image_url"]:
        fields["image_url"] = data["image_url"]
    return fields | _status_fields(task)
