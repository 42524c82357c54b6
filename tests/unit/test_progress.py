"""Progress a client can keep a call alive on: it never stalls, whatever is in flight, it
comes without near-duplicate pairs, and it stops when the call ends or is cancelled."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp import Client

from hailuo_mcp.config import Settings
from hailuo_mcp.emulator import Emulator, Fault
from hailuo_mcp.progress import ProgressClock
from hailuo_mcp.server import build_server
from tests.support import make_settings, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.emulator(clock=100, seed=5, fixed_durations=None)]

# Progress every 0.2 s here stands for the server's 4 s: the same code, 20 times faster.
INTERVAL = 0.2


def fast_progress(settings: Settings) -> Settings:
    return settings.model_copy(update={"progress_interval": INTERVAL})


class Recorder:
    """Progress notifications with the time they arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float, str]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((time.monotonic(), progress, message or ""))

    def gaps(self, since: float) -> list[float]:
        times = [since] + [t for t, _, _ in self.seen]
        return [b - a for a, b in zip(times, times[1:], strict=False)]


async def test_a_hanging_poll_does_not_stop_progress(emulator: Emulator, tmp_path: Path) -> None:
    # Every GET hangs for 1.5 s (5 intervals): before, nothing was sent while one was in flight.
    settings = fast_progress(make_settings(emulator, tmp_path))
    emulator.add_fault(Fault("get", "hang", delay=1.5, times=2))
    recorder = Recorder()
    async with Client(build_server(settings)) as c:
        started = time.monotonic()
        with anyio.fail_after(30):
            result = await c.call_tool(
                "generate_video", {"prompt": "x", "wait_seconds": 3}, progress_callback=recorder
            )
    assert result.structured_content is not None, text_of(result)
    assert len(recorder.seen) >= 10
    # Generous bound against a noisy machine: far below the 1.5 s hang.
    assert max(recorder.gaps(started)) < 4 * INTERVAL


async def test_a_slow_create_does_not_stop_progress(emulator: Emulator, tmp_path: Path) -> None:
    settings = fast_progress(make_settings(emulator, tmp_path))
    emulator.add_fault(Fault("create", "hang", delay=1.5))
    recorder = Recorder()
    async with Client(build_server(settings)) as c:
        started = time.monotonic()
        with anyio.fail_after(30):
            await c.call_tool(
                "generate_video", {"prompt": "x", "wait_seconds": 0}, progress_callback=recorder
            )
    creating = [m for _, _, m in recorder.seen if "creating" in m]
    assert len(creating) >= 4
    assert max(recorder.gaps(started)) < 4 * INTERVAL


async def test_progress_comes_without_near_duplicate_pairs(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = fast_progress(make_settings(emulator, tmp_path))
    recorder = Recorder()
    async with Client(build_server(settings)) as c:
        with anyio.fail_after(30):
            result = await c.call_tool(
                "generate_video", {"prompt": "x"}, progress_callback=recorder
            )
    assert not result.is_error, text_of(result)
    values = [p for _, p, _ in recorder.seen]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert values[-1] == 100.0
    # A heartbeat is never sent right after a change (or another heartbeat) with the same text.
    for (t1, _, m1), (t2, _, m2) in zip(recorder.seen, recorder.seen[1:], strict=False):
        assert not (m1 == m2 and t2 - t1 < INTERVAL / 2), (m1, t2 - t1)


async def test_nothing_is_sent_after_the_result(emulator: Emulator, tmp_path: Path) -> None:
    settings = fast_progress(make_settings(emulator, tmp_path))
    recorder = Recorder()
    async with Client(build_server(settings)) as c:
        with anyio.fail_after(30):
            await c.call_tool(
                "generate_video", {"prompt": "x", "wait_seconds": 0.3}, progress_callback=recorder
            )
        count = len(recorder.seen)
        await anyio.sleep(3 * INTERVAL)  # three heartbeats' time, with the task still running
        assert len(recorder.seen) == count


async def test_the_ticker_repeats_the_latest_state_until_it_changes() -> None:
    sent: list[tuple[float, str]] = []

    async def send(progress: float, total: float | None, message: str) -> None:
        sent.append((progress, message))

    async with running_clock() as clock:
        progress = clock.start(send, interval=0.05)
        progress.say("checking the image")
        await anyio.sleep(0.18)
        progress.follow("task-1", "pending", expected_s=10.0)
        await anyio.sleep(0.08)
        await progress.finish("saved")
    messages = [m for _, m in sent]
    assert messages[0] == "checking the image" and messages.count("checking the image") >= 3
    assert any(m.startswith("pending · ") and "task task-1" in m for m in messages)
    assert messages[-1] == "saved" and sent[-1][0] == 100.0
    assert [p for p, _ in sent] == sorted({p for p, _ in sent})


class Sends:
    """What one call's progress sent; a send can be made to hang or to fail."""

    def __init__(self, *, hang: bool = False, fail: bool = False) -> None:
        self.sent: list[str] = []
        self.hang = hang
        self.fail = fail
        self.released = anyio.Event()

    async def __call__(self, progress: float, total: float | None, message: str) -> None:
        if self.fail:
            raise RuntimeError("a broken transport")
        if self.hang:
            await self.released.wait()
        self.sent.append(message)


@asynccontextmanager
async def running_clock() -> AsyncIterator[ProgressClock]:
    """A ProgressClock whose task runs for the block, as the server's lifespan runs it."""
    clock = ProgressClock()
    async with anyio.create_task_group() as group:
        group.start_soon(clock.run)
        yield clock
        group.cancel_scope.cancel()


async def test_one_call_whose_client_hangs_does_not_delay_another_call_s_progress() -> None:
    stuck, fine = Sends(hang=True), Sends()
    async with running_clock() as clock:
        first = clock.start(stuck, interval=0.05)
        second = clock.start(fine, interval=0.05)
        first.say("creating the task")  # its send never returns
        second.say("processing")
        await anyio.sleep(0.3)
        assert fine.sent.count("processing") >= 4 and stuck.sent == []
        first.close()
        second.close()


async def test_a_change_during_a_send_is_sent_when_that_send_ends() -> None:
    slow = Sends(hang=True)
    async with running_clock() as clock:
        progress = clock.start(slow, interval=10.0)  # no repeats: only changes are sent
        progress.say("pending")
        await anyio.sleep(0.05)
        progress.say("processing")  # while "pending" is still being sent
        slow.hang = False
        slow.released.set()
        with anyio.fail_after(2):
            while slow.sent != ["pending", "processing"]:
                await anyio.sleep(0.01)
        progress.close()


async def test_closing_stops_a_send_in_flight_and_every_later_one() -> None:
    sends = Sends(hang=True)
    async with running_clock() as clock:
        progress = clock.start(sends, interval=0.02)
        progress.say("processing")
        await anyio.sleep(0.05)
        progress.close()  # the call returned while its send hung
        sends.hang = False
        sends.released.set()
        await anyio.sleep(0.15)
    assert sends.sent == []


async def test_a_send_that_fails_ends_that_call_s_progress_only() -> None:
    broken, fine = Sends(fail=True), Sends()
    async with running_clock() as clock:
        clock.start(broken, interval=0.02).say("pending")
        other = clock.start(fine, interval=0.02)
        other.say("processing")
        await anyio.sleep(0.15)
        assert fine.sent.count("processing") >= 3
        other.close()


async def test_finishing_while_a_send_hangs_makes_the_result_s_notification_the_last() -> None:
    sends = Sends(hang=True)
    async with running_clock() as clock:
        progress = clock.start(sends, interval=0.02)
        progress.say("processing")  # this send hangs
        await anyio.sleep(0.05)
        sends.hang = False
        await progress.finish("saved")
        sends.released.set()  # had the hung send survived, it would now arrive after "saved"
        await anyio.sleep(0.15)  # several intervals
    assert sends.sent == ["saved"]
