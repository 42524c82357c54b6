"""The schedule learns from the ledger: polls go where this account's tasks of a kind ended.

The history is made the way a user makes it, through the tools against the emulator over real
HTTP; the ledger keeps PiAPI's own times, which are read back as multiples of the page's 77 s,
so a history made on one clock (a frozen emulator, advanced) serves a wait on another.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from mcp import Client

from hailuo_mcp.durations import Durations
from hailuo_mcp.emulator import Emulator
from hailuo_mcp.errors import StorageError
from hailuo_mcp.history import TimingHistory
from hailuo_mcp.ledger import SqliteLedger
from hailuo_mcp.ledger.records import TaskTiming
from hailuo_mcp.models import Task, TaskStatus, VideoRequest
from hailuo_mcp.pricing import estimate
from hailuo_mcp.server import build_server
from tests.support import MANUAL, MakeEmulator, make_settings, text_of

pytestmark = pytest.mark.anyio

SLOW = (1.0, 120.0)  # queued 1 s, generated 120 s: far slower than the page's 76 s
SPEED = 50.0  # a 121 s task ends 2.4 real seconds after its create


async def make_history(emulator: Emulator, tmp_path: Path, count: int) -> None:
    """`count` slow tasks, created and then seen completed through the tools."""
    settings = make_settings(emulator, tmp_path, HAILUO_EXPECTED_SECONDS="77", HAILUO_RESUME="0")
    async with Client(build_server(settings)) as client:
        ids = []
        for i in range(count):
            started = await client.call_tool(
                "generate_video", {"prompt": f"slow shot {i}", "wait_seconds": 0}
            )
            ids.append((started.structured_content or {})["task_id"])
        emulator.advance(200)
        for task_id in ids:
            seen = await client.call_tool("get_task", {"task_id": task_id})
            assert (seen.structured_content or {})["status"] == "completed", text_of(seen)


async def one_task(emulator: Emulator, tmp_path: Path) -> tuple[float, int, int]:
    """One task through the tools: its notice delay, its GETs, and those in its first 100 s.

    The first 100 s of generation are where the page's figures poll densely (62-99 s).
    """
    settings = make_settings(emulator, tmp_path, HAILUO_RESUME="0")
    async with Client(build_server(settings)) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("generate_video", {"prompt": "the next one"})
    assert not result.is_error, text_of(result)
    task_id = (result.structured_content or {})["task_id"]
    meta = emulator.task(task_id)["meta"]
    started, ended = (_seconds(meta[key]) for key in ("started_at", "ended_at"))
    polls = [e.at for e in emulator.log if e.task_id == task_id and e.route == "get"]
    early = sum(1 for at in polls if at < started + 100)
    return max(polls) - ended, len(polls), early


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp[:26].rstrip("Z")).replace(tzinfo=UTC).timestamp()


async def test_a_history_of_slow_tasks_moves_the_dense_window_later(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    past = make_emulator(clock=MANUAL, fixed_durations=SLOW, seed=5)  # the history: advanced
    now = make_emulator(clock=SPEED, fixed_durations=SLOW, seed=6)  # the next task: 50x
    # Without history the schedule polls densely where the page's 76 s tasks end, and then
    # chases the slow task through its tail.
    _, cold_gets, cold_early = await one_task(now, tmp_path / "fresh")
    await make_history(past, tmp_path / "known", 30)
    _, gets, early = await one_task(now, tmp_path / "known")
    assert cold_early >= 10 and cold_gets >= 20
    assert early <= 4  # the first look and a few sparse ones, not a window at 62-99 s
    assert gets <= 12
    # How promptly the end is noticed is a timing (each real millisecond is 50 emulated ones
    # here): bench/completion.py measures it (docs/PERFORMANCE.md); the counts above are the
    # schedule's behaviour.


async def test_a_few_slow_tasks_already_move_the_window_but_the_page_still_counts(
    tmp_path: Path,
) -> None:
    ledger_path = tmp_path / "ledger.sqlite3"
    async with SqliteLedger(ledger_path) as ledger:
        for i in range(3):
            await record_completed(ledger, f"slow-{i}", generation_s=120.0)
        durations = await TimingHistory(ledger).durations("v2.3", 6, 768, expected_s=77.0)
    page = Durations.from_page(77.0)
    assert durations.tasks == 3
    assert page.generation.quantile(0.5) < durations.generation.quantile(0.5) < 120.0


async def test_history_is_per_kind_and_read_in_piapis_seconds(tmp_path: Path) -> None:
    async with SqliteLedger(tmp_path / "ledger.sqlite3") as ledger:
        for i in range(10):
            await record_completed(ledger, f"a-{i}", generation_s=100.0, queue_s=4.0)
        await record_completed(ledger, "ten", generation_s=300.0, duration=10)
        timings = await ledger.completed_timings("v2.3", 6, 768, limit=50)
        # The demo's clock runs 10 times faster: HAILUO_EXPECTED_SECONDS is 7.7 there.
        fast = await TimingHistory.for_expected(ledger, 7.7).durations(
            "v2.3", 6, 768, expected_s=7.7
        )
    assert timings == [TaskTiming(4.0, 100.0)] * 10  # the 10 s clip is another kind
    assert fast.generation.quantile(0.5) == pytest.approx(10.0, rel=0.1)
    assert fast.queue.quantile(0.5) == pytest.approx(0.4, rel=0.25)


async def test_an_unreadable_ledger_leaves_the_pages_figures() -> None:
    class Broken:
        async def completed_timings(self, *args: object, **kwargs: object) -> list[TaskTiming]:
            raise StorageError("the task ledger is locked")

    history = TimingHistory(Broken())  # type: ignore[arg-type]  # only the read it needs
    durations = await history.durations("v2.3", 6, 768, expected_s=77.0)
    assert durations == Durations.from_page(77.0)


async def test_one_read_serves_every_wait_that_starts_together(tmp_path: Path) -> None:
    reads = 0

    class Counting(SqliteLedger):
        async def completed_timings(
            self, model: str, duration: int, resolution: int, limit: int
        ) -> list[TaskTiming]:
            nonlocal reads
            reads += 1
            return await super().completed_timings(model, duration, resolution, limit)

    clock = [0.0]
    async with Counting(tmp_path / "ledger.sqlite3") as ledger:
        history = TimingHistory(ledger, clock=lambda: clock[0])
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(lambda: history.durations("v2.3", 6, 768, expected_s=77.0))
        clock[0] = 60.0  # later than half a task: a new completion may have come
        await history.durations("v2.3", 6, 768, expected_s=77.0)
    assert reads == 2


async def record_completed(
    ledger: SqliteLedger,
    task_id: str,
    *,
    generation_s: float,
    queue_s: float = 1.0,
    duration: int = 6,
) -> None:
    """A task created here and seen completed, with PiAPI's three times."""
    request = VideoRequest(prompt="x", duration=duration)
    created = datetime(2026, 1, 25, 13, 0, tzinfo=UTC)
    started = created + timedelta(seconds=queue_s)
    ended = started + timedelta(seconds=generation_s)
    attempt = await ledger.record_attempt(request.upstream_input())
    pending = Task(task_id=task_id, status=TaskStatus.PENDING, created_at=created)
    price = estimate(request.model, request.duration, request.resolution, points_per_usd=10**7)
    await ledger.record_created(pending, request, price, attempt_id=attempt)
    done = Task(
        task_id=task_id,
        status=TaskStatus.COMPLETED,
        video_url="https://example.com/v.mp4",
        created_at=created,
        started_at=started,
        ended_at=ended,
    )
    await ledger.record_seen(done)
