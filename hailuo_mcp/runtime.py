"""The server's resources, owned by one lifespan: opened in order, closed in reverse.

`open_runtime` opens the PiAPI client, the ledger and the task group that background tracking
runs in (and, in demo mode, the built-in emulator), starts resuming unfinished tasks, and
yields a `Runtime`. If opening fails, the server still runs: every tool answers the reason,
which a client shows, instead of the session dying before it can say anything.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from pydantic import SecretStr

from hailuo_mcp import webhook_listener
from hailuo_mcp.config import Settings
from hailuo_mcp.downloads import VideoDownloader
from hailuo_mcp.errors import HailuoError, StorageError
from hailuo_mcp.flow import DEMO_LOST, VideoService
from hailuo_mcp.images import ImageGate
from hailuo_mcp.leases import LeaseKeeper
from hailuo_mcp.ledger import TaskRecord
from hailuo_mcp.ledger.factory import open_ledger
from hailuo_mcp.piapi import PiAPIClient
from hailuo_mcp.poster_jobs import PosterMaker
from hailuo_mcp.progress import ProgressClock
from hailuo_mcp.spending import wall_clock
from hailuo_mcp.tracking import Tracker
from hailuo_mcp.webhooks import WebhookInbox, load_or_create_secret, webhook_endpoint

logger = logging.getLogger(__name__)

# Threads for blocking file work at once (the ledger and the posters have limiters of their own).
WORKER_THREADS = 8


@dataclass(frozen=True)
class Runtime:
    """What the tools use: the service, or the reason it could not be opened."""

    settings: Settings
    opened: VideoService | None
    failure: HailuoError | None = None
    # PiAPI's deliveries, when HAILUO_PUBLIC_URL is set.
    inbox: WebhookInbox | None = None
    # Background work in the lifespan's task group (MCP protocol tasks follow their videos here).
    tracker: Tracker | None = None
    # The settings the service runs with (demo mode points them at its emulator, 100x faster).
    served: Settings | None = None
    # Poster frames, made in the task group and waited for within a budget (poster_jobs.py).
    posters: PosterMaker | None = None
    # Sends every call's progress (progress.py); runs in the task group.
    progress_clock: ProgressClock | None = None

    @property
    def service(self) -> VideoService:
        """The open service; raises the error that prevented opening it."""
        if self.opened is None:
            raise self.failure or StorageError("The server's resources are not open.")
        return self.opened


def runtime_of(ctx: Any) -> Runtime:
    """The lifespan's Runtime, from a tool's or resource's Context."""
    runtime = ctx.request_context.lifespan_context
    assert isinstance(runtime, Runtime), "the server's lifespan yields a Runtime"
    return runtime


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    listen_for_webhooks: bool = True,
    clock: Callable[[], float] = wall_clock,
) -> AsyncIterator[Runtime]:
    """Open everything the tools need for the life of the server.

    With HAILUO_PUBLIC_URL set, the webhook receiver listens on HAILUO_WEBHOOK_LISTEN unless
    `listen_for_webhooks` is off (over HTTP it is a route of the server's own app).
    """
    async with AsyncExitStack() as stack:
        try:
            runtime = await _open(stack, settings, listen_for_webhooks, clock)
        except HailuoError as exc:
            logger.error("could not open the server's resources: %s", exc.message)
            runtime = Runtime(settings, None, exc)
        except Exception as exc:
            # Anything else (the demo emulator failing to bind, say) is still told through the
            # tools; the session must not die of it.
            logger.exception("could not open the server's resources")
            runtime = Runtime(
                settings,
                None,
                StorageError(
                    f"The server could not open its resources ({type(exc).__name__}: {exc}); "
                    "see its log, fix the cause and restart it."
                ),
            )
        yield runtime


async def _open(
    stack: AsyncExitStack,
    settings: Settings,
    listen_for_webhooks: bool,
    clock: Callable[[], float],
) -> Runtime:
    given = settings
    # File work (fsyncs, poster cache reads, output-folder checks) runs on anyio's worker
    # threads. Its default of 40 came into play when many tasks ended together; each thread
    # adds a malloc arena and stack, and 2 cores gain nothing past a few (docs/PERFORMANCE.md).
    anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
    if settings.demo:
        settings = _start_demo_upstream(stack, settings)
    if settings.public_url:
        settings = _with_our_webhook(settings)
    client = await stack.enter_async_context(PiAPIClient(settings))
    # Each part its own HTTP client and policy: the task API, the video host, image hosts.
    downloader = await stack.enter_async_context(VideoDownloader(settings))
    images = await stack.enter_async_context(ImageGate(settings, client))
    # SQLite under HAILUO_STATE_DIR, or PostgreSQL shared by replicas (HAILUO_DATABASE_URL).
    ledger = await stack.enter_async_context(open_ledger(settings))
    if settings.demo:
        # The emulator keeps its tasks in memory: those it had before a restart are gone.
        lost = await ledger.record_lost(DEMO_LOST)
        if lost:
            logger.info("demo mode: %d emulated task(s) from before the restart ended", lost)
    leases = LeaseKeeper(ledger, settings.lease_seconds)
    # Runs after the task group below has stopped, before the ledger closes.
    stack.push_async_callback(leases.release_all)
    group = await stack.enter_async_context(anyio.create_task_group())
    # Closed first (the stack unwinds in reverse): background tracking stops before its parts.
    stack.callback(group.cancel_scope.cancel)
    tracker = Tracker(group)
    service = VideoService(
        settings,
        client=client,
        ledger=ledger,
        downloader=downloader,
        image_check=images.prepare,
        tracker=tracker,
        webhooks=settings.webhook_secret is not None and settings.public_url is not None,
        leases=leases,
        clock=clock,
    )
    inbox = None
    if settings.public_url and settings.webhook_secret is not None:
        hide = tuple(s for s in (settings.api_key, settings.webhook_secret) if s is not None)
        inbox = WebhookInbox(settings.webhook_secret, lambda: service, hide=hide)
        if listen_for_webhooks:
            sock = webhook_listener.bind(*settings.webhook_host_port)
            if sock is not None:
                group.start_soon(webhook_listener.listen, inbox.app(), sock)
    follow = partial(_follow_orphan, service)
    if settings.resume_on_start:
        group.start_soon(_resume, leases, follow)
    # Renew this replica's leases; pick up the tasks of replicas that stopped (with the
    # server's key: tasks paid with a caller's own key wait for a webhook or their owner).
    take_over = settings.resume_on_start and settings.api_key is not None
    group.start_soon(partial(leases.run, take_over=take_over), follow)
    progress_clock = ProgressClock()
    group.start_soon(progress_clock.run)
    return Runtime(
        given,
        service,
        inbox=inbox,
        tracker=tracker,
        served=settings,
        posters=PosterMaker(group),
        progress_clock=progress_clock,
    )


def _with_our_webhook(settings: Settings) -> Settings:
    """Creates carry our receiver and this server's secret (HAILUO_PUBLIC_URL).

    PIAPI_WEBHOOK_SECRET, when set, is that secret: replicas with state folders of their own
    share it, so a delivery is accepted by whichever replica it lands on. Otherwise the secret
    is made once in HAILUO_STATE_DIR.
    """
    assert settings.public_url is not None
    if settings.webhook_url:
        logger.warning("HAILUO_PUBLIC_URL is set: it replaces PIAPI_WEBHOOK_URL for new tasks")
    secret = settings.webhook_secret or load_or_create_secret(settings.state_dir)
    return settings.model_copy(
        update={"webhook_url": webhook_endpoint(settings.public_url), "webhook_secret": secret}
    )


def _follow_orphan(service: VideoService, row: TaskRecord) -> None:
    service.track_in_background(row.task_id)


# At start-up every unfinished task nobody holds is followed (a crashed run's own among them).
_RESUME_LIMIT = 1000


async def _resume(leases: LeaseKeeper, follow: Callable[[TaskRecord], None]) -> None:
    try:
        await leases.take_over(follow, _RESUME_LIMIT)
    except HailuoError as exc:
        logger.warning("could not resume unfinished tasks: %s", exc.message)


def _start_demo_upstream(stack: AsyncExitStack, settings: Settings) -> Settings:
    """Start the built-in emulator and point the settings at it (no key needed)."""
    # Imported here: only demo mode runs the emulator.
    from hailuo_mcp.emulator import EmulatorConfig, running_emulator

    speed = settings.demo_speed
    emulator = stack.enter_context(
        running_emulator(EmulatorConfig(api_key="demo-key", speed=speed))
    )
    logger.info("demo mode: PiAPI emulator at %s, %gx speed", emulator.url, speed)
    return settings.model_copy(
        update={
            "api_key": SecretStr("demo-key"),
            "base_url": emulator.url,
            "upload_url": emulator.upload_url,
            "expected_seconds": settings.expected_seconds / speed,
            "state_dir": settings.state_dir / "demo",
            # Emulated videos stay apart from real ones.
            "output_dir": settings.output_dir / "demo",
        }
    )
