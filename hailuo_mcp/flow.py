"""The generation flow, top to bottom: validate, estimate, create, record, poll, download, answer.

No MCP here: tools call `VideoService` and turn its results and errors into tool results.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import (
    HailuoError,
    InputError,
    RetryableError,
    TaskFailedError,
    TaskNotFoundError,
)
from hailuo_mcp.ledger import Ledger, TaskRecord
from hailuo_mcp.models import Task, TaskStatus, VideoRequest, is_valid_task_id
from hailuo_mcp.piapi import PiAPIClient, missing_key_error
from hailuo_mcp.polling import QUEUE_SHARE, PollSchedule, expected_seconds, progress_percent
from hailuo_mcp.pricing import Estimate, estimate
from hailuo_mcp.results import VideoResult

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, float | None, str], Awaitable[None]]
# Checks the image before any create and returns the request with its final http(s) URL;
# the callback receives a sentence for each check that could not be made (see images.py).
ImageGate = Callable[[VideoRequest, Callable[[str], None]], Awaitable[VideoRequest]]

# Unfinished tasks older than this are not resumed at start-up (outputs expire anyway).
_RESUME_MAX_AGE_S = 24 * 3600.0
# A task seen missing this many times in a row right after its create is really missing.
_NOT_FOUND_TOLERANCE = 3


async def _no_progress(progress: float, total: float | None, message: str) -> None:
    return None


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
        progress: ProgressFn = _no_progress,
    ) -> VideoResult:
        """Create one task and follow it until done or the wait budget is spent."""
        if self._settings.api_key is None:
            raise missing_key_error()
        self.check_request(request)
        price = self.estimate(request)
        warnings: list[str] = []
        if request.image_url and self._image_gate is not None:
            request = await self._image_gate(request, warnings.append)
        attempt = await self._ledger.start_attempt(request.upstream_input())
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
        result = await self._follow_guarded(task, budget, progress, created_here=True)
        return result.model_copy(update={"warnings": warnings}) if warnings else result

    async def _follow_guarded(
        self, task: Task, budget: float, progress: ProgressFn, *, created_here: bool
    ) -> VideoResult:
        """Follow a task; whatever goes wrong, the error names the task (invariant 3)."""
        try:
            return await self._follow(task, budget, progress, created_here=created_here)
        except HailuoError as exc:
            raise exc.with_task(task.task_id) from None
        except Exception as exc:
            # Even a bug must not hide the id of a task the user may pay for.
            logger.exception("task %s: unexpected failure while following it", task.task_id)
            raise HailuoError(
                f"Internal error while following the task ({type(exc).__name__}); the task is "
                "recorded: call get_task to check it.",
                task_id=task.task_id,
            ) from exc

    async def lookup(
        self,
        task_id: str,
        *,
        wait_seconds: float = 0.0,
        progress: ProgressFn = _no_progress,
    ) -> VideoResult:
        """Current state of a task (ours or created elsewhere), optionally waiting for it."""
        if not is_valid_task_id(task_id):
            raise InputError(
                "task_id must be a PiAPI task id (letters, digits, '-' and '_', at most 128 "
                "characters)"
            )
        known = await self._ledger.get(task_id)
        if known is not None and known.status == TaskStatus.COMPLETED and known.video_path:
            if Path(known.video_path).is_file():
                return self._result_from_record(known, waited=0.0)
        if self._settings.api_key is None:
            raise missing_key_error()
        task = await self._client.get(task_id)
        if known is None:
            await self._ledger.record_task(
                task_id, task.status, origin="imported", fields=_fields_from_input(task)
            )
        return await self._follow_guarded(task, wait_seconds, progress, created_here=False)

    async def _follow(
        self,
        task: Task,
        budget: float,
        progress: ProgressFn,
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
        percent = 0.0
        failures = 0
        retry_after: float | None = None
        missing = 0
        last_status = task.status
        self._seed_schedule(schedule, task, record, created_here=created_here)

        async def tick(message: str) -> None:
            nonlocal percent
            elapsed = time.monotonic() - started
            percent = max(percent + 0.01, progress_percent(elapsed, expected))
            await progress(percent, 100.0, message)

        while not task.status.is_terminal:
            now = time.monotonic()
            elapsed = now - started
            if now >= deadline:
                break
            delay = schedule.next_delay(elapsed)
            if failures:
                delay = max(delay, schedule.backoff(failures, retry_after))
            wake = min(now + delay, deadline)
            # Sleep in slices so a client that resets its timeout on progress keeps the call.
            while True:
                await tick(
                    f"{task.status.value} · {time.monotonic() - started:.0f}s waited "
                    f"(usually ~{expected:.0f}s) · task {task_id}"
                )
                remaining = wake - time.monotonic()
                if remaining <= 0:
                    break
                await anyio.sleep(min(remaining, self._settings.progress_interval))
            if time.monotonic() >= deadline:
                break
            try:
                with anyio.fail_after(max(0.05, deadline - time.monotonic())):
                    fresh = await self._client.get(task_id)
            except TimeoutError:
                break
            except RetryableError as exc:
                failures += 1
                retry_after = exc.retry_after
                logger.warning("task %s: poll failed (%s), retrying", task_id, exc.message)
                continue
            except TaskNotFoundError:
                missing += 1
                if not created_here or missing >= _NOT_FOUND_TOLERANCE:
                    raise
                failures += 1
                continue
            failures, retry_after, missing = 0, None, 0
            task = fresh
            schedule.observe(time.monotonic() - started, task.status)
            if task.status != last_status:
                last_status = task.status
                await self._ledger.update(task_id, **_status_fields(task))
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
            await tick(f"completed · saving the video · task {task_id}")
            path = await self.save_video(task)
            result = await self._recorded_result(task_id, waited)
            await progress(100.0, 100.0, f"saved {path.name}")
            return result.model_copy(update={"generation_seconds": _generation_seconds(task)})
        if not background:
            self.track_in_background(task_id)
        result = await self._recorded_result(task_id, waited)
        if task.status.is_terminal:
            return result.model_copy(
                update={"next_step": f"The task ended with status {task.status.value}."}
            )
        return result.model_copy(
            update={
                "next_step": f"The video is still being generated (status {task.status.value}). "
                f"Call get_task with task_id={task_id} and wait_seconds up to "
                f"{self._settings.wait_seconds:g} to check again; it is saved automatically "
                "when it completes."
            }
        )

    async def _recorded_result(self, task_id: str, waited: float) -> VideoResult:
        """The answer about a task, read from its ledger row (written before we got here)."""
        record = await self._ledger.get(task_id)
        if record is None:  # pragma: no cover - every followed task was recorded first
            raise HailuoError("the task ledger lost this task", task_id=task_id)
        return self._result_from_record(record, waited=waited)

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
            await self._follow(task, budget, _no_progress, created_here=False, background=True)
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

    def _result_from_record(self, record: TaskRecord, *, waited: float) -> VideoResult:
        charged = record.status == TaskStatus.COMPLETED
        cost = record.estimate_usd
        if charged and record.consumed_points:
            cost = record.consumed_points / self._settings.points_per_usd
        saved = record.video_path is not None
        if saved:
            next_step = f"The video is saved at {record.video_path}."
        elif record.status == TaskStatus.COMPLETED:
            next_step = (
                f"The video is ready at video_url; call get_task {record.task_id} to save it."
            )
        else:
            next_step = f"Call get_task with task_id={record.task_id} to check again."
        return VideoResult(
            task_id=record.task_id,
            status=record.status,
            done=saved or record.status in (TaskStatus.FAILED, TaskStatus.CANCELLED),
            video_path=record.video_path,
            video_url=record.video_url,
            model=record.model,
            duration=record.duration,
            resolution=record.resolution,
            prompt=record.prompt,
            cost_usd=round(cost, 4) if cost is not None else None,
            charged=charged,
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
