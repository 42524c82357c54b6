"""Noticing completion: delay from upstream completion to our notice, and GETs per task.

Part 1 simulates `polling.PollSchedule` over durations drawn from the emulator's duration model
(`timing.sample_durations`), side by side on the same tasks, for each generation spread:

* ours, cold: the page's figures (no history);
* ours, after 30 tasks: `Durations.learnt` from 30 tasks drawn at the same spread (HISTORIES
  different histories, each followed by its share of the tasks), as the flow does from the
  ledger;
* a fixed 15 s poller;
* the webhook path, simulated: the safety-net schedule (`safety_net=True`, after 30 tasks)
  polls while PiAPI's delivery arrives WEBHOOK_LATENCY after the end (uniform, half a round
  trip to a whole one); whichever tells first ends the wait. The GETs are the safety net's.

A GET at time t sees pending before the queue ends, processing until queue+generation, and
completed after. Part 2 confirms with real runs through the MCP tool layer (in-process client)
against the emulator on loopback with a time-scaled clock: 30 tasks make the history, then the
measured tasks run with it; the delay is measured on the emulator's clock from its `ended_at`
to the GET that saw `completed` (noticed) and to the tool result. The webhook run uses the
emulator's real deliveries to our receiver (HAILUO_PUBLIC_URL); its delay is to the result.

Time-scaling multiplies the GET rate and every real-time overhead by the speed factor, so the
real runs keep few tasks in flight and state their speed.

    .venv/bin/python bench/completion.py [--tasks 20000] [--real 40] [--speed 10]
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
from _util import FAKE_KEY, emulator_settings, machine, quantile, quiet_logs
from mcp import Client

from hailuo_mcp.durations import Durations
from hailuo_mcp.emulator import (
    Emulator,
    EmulatorConfig,
    TimingParams,
    running_emulator,
    sample_durations,
)
from hailuo_mcp.models import TaskStatus, parse_time
from hailuo_mcp.polling import PollSchedule, expected_seconds
from hailuo_mcp.server import build_server

BASE_S = 77.0  # HAILUO_EXPECTED_SECONDS, the default
FIXED_S = 15.0  # what common servers do
HISTORY = 30
HISTORIES = 20
WEBHOOK_LATENCY = (0.05, 0.3)  # half a round trip to a whole one (docs/PERFORMANCE.md)
SIGMAS = (0.12, 0.3, 0.5)
SWEEP = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
COMBOS = [
    ("v2.3", 6, 768),
    ("v2.3", 10, 768),
    ("v2.3", 6, 1080),
    ("v2.3-fast", 6, 768),
    ("v2.3-fast", 10, 768),
]
Spans = list[tuple[float, float]]


class Poller(Protocol):
    """What the flow asks of a schedule."""

    def next_delay(self, elapsed: float) -> float: ...

    def observe(self, elapsed: float, status: TaskStatus) -> None: ...


class FixedPoller:
    """The baseline: one GET every `interval` seconds, whatever happens."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def next_delay(self, elapsed: float) -> float:
        """Always the same interval."""
        return self.interval

    def observe(self, elapsed: float, status: TaskStatus) -> None:
        """Learns nothing."""


@dataclass
class Outcome:
    """Delays (s) from completion to the notice, and GETs per task."""

    delays: list[float]
    gets: list[int]

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(self.delays + other.delays, self.gets + other.gets)

    @property
    def p95(self) -> float:
        """The 95th percentile delay."""
        return quantile(self.delays, 0.95)

    def cells(self) -> str:
        """p50 | p95 | max | GETs mean, as table cells."""
        d = self.delays
        return (
            f"{quantile(d, 0.5):5.2f} s | {self.p95:5.2f} s | {max(d):5.1f} s | "
            f"{statistics.fmean(self.gets):5.1f}"
        )


def simulate(
    spans: Spans, poller: Callable[[], Poller], webhook_seed: int | None = None
) -> Outcome:
    """Walk each task's polls; a GET answers the status at its own time.

    With `webhook_seed`, PiAPI's delivery also arrives WEBHOOK_LATENCY after each end, and
    whichever tells first ends the wait.
    """
    rng = random.Random(webhook_seed)
    delays: list[float] = []
    gets: list[int] = []
    for queue_s, generate_s in spans:
        schedule = poller()
        end = queue_s + generate_s
        delivered = end + rng.uniform(*WEBHOOK_LATENCY) if webhook_seed is not None else None
        now, count = 0.0, 0
        while True:
            after = now + schedule.next_delay(now)
            if delivered is not None and after >= delivered:
                now = delivered
                break
            now, count = after, count + 1
            if now >= end:
                break
            started = now >= queue_s
            schedule.observe(now, TaskStatus.PROCESSING if started else TaskStatus.PENDING)
        delays.append(now - end)
        gets.append(count)
    return Outcome(delays, gets)


def draw(n: int, combo: tuple[str, int, int], sigma: float, seed: int) -> Spans:
    """`n` (queue, generation) pairs from the emulator's duration model at spread `sigma`."""
    rng = random.Random(seed)
    params = TimingParams(generate_sigma=sigma)
    return [sample_durations(rng, *combo, params) for _ in range(n)]


@dataclass
class Side:
    """One spread, every poller on the same tasks."""

    cold: Outcome
    learnt: Outcome
    fixed: Outcome
    webhook: Outcome


def side_by_side(n: int, combo: tuple[str, int, int], sigma: float, seed: int) -> Side:
    """Cold, after 30 tasks, fixed 15 s and the webhook path, on the same `n` tasks."""
    e = expected_seconds(BASE_S, *combo)
    tasks = draw(n, combo, sigma, seed)
    share = max(1, n // HISTORIES)
    learnt = webhook = Outcome([], [])
    for h in range(HISTORIES):
        # Each history is 30 earlier tasks of the same kind, drawn apart from the measured ones.
        known = Durations.learnt(draw(HISTORY, combo, sigma, seed * 1000 + h), e)
        part = tasks[h * share : (h + 1) * share]
        learnt += simulate(part, lambda k=known: PollSchedule(e, durations=k, base_s=BASE_S))
        webhook += simulate(
            part,
            lambda k=known: PollSchedule(e, safety_net=True, durations=k, base_s=BASE_S),
            webhook_seed=seed + h,
        )
    return Side(
        cold=simulate(tasks, lambda: PollSchedule(e, base_s=BASE_S)),
        learnt=learnt,
        fixed=simulate(tasks, lambda: FixedPoller(FIXED_S)),
        webhook=webhook,
    )


def simulation(n: int) -> None:
    """Print the side-by-side table, the sweep over spreads and the per-combination table."""
    seed_combo = COMBOS[0]
    print(
        f"\n== simulation: {n} tasks per spread, v2.3 · 6 s · 768 (generation median 76 s, "
        f"queue median 1.5 s sigma 0.9); history {HISTORY} tasks, {HISTORIES} histories"
    )
    print("| σ | poller | p50 | p95 | max | GETs/task |\n|---|---|---|---|---|---|")
    for sigma in SIGMAS:
        side = side_by_side(n, seed_combo, sigma, seed=1)
        for name, outcome in (
            ("ours, cold", side.cold),
            (f"ours, after {HISTORY} tasks", side.learnt),
            (f"fixed {FIXED_S:g} s", side.fixed),
            ("webhook path (safety net + delivery)", side.webhook),
        ):
            print(f"| {sigma:g} | {name} | {outcome.cells()} |")
    print(f"\n== never worse than the {FIXED_S:g} s poller? ({n // 4} tasks per spread)")
    print("| σ | cold p95 | GETs | after 30 p95 | GETs | 15 s p95 | GETs | cold ≤ 15 s |")
    print("|---|---|---|---|---|---|---|---|")
    for sigma in SWEEP:
        side = side_by_side(n // 4, seed_combo, sigma, seed=2)
        c, lt, f = side.cold, side.learnt, side.fixed
        print(
            f"| {sigma:g} | {c.p95:.2f} s | {statistics.fmean(c.gets):.1f} | {lt.p95:.2f} s | "
            f"{statistics.fmean(lt.gets):.1f} | {f.p95:.2f} s | {statistics.fmean(f.gets):.1f}"
            f" | {'yes' if max(c.p95, lt.p95) <= f.p95 else 'NO'} |"
        )
    print(f"\n== per combination, σ 0.3 ({n // 4} tasks each)")
    print("| combination (E) | cold p95 | GETs | after 30 p95 | GETs | 15 s p95 | GETs |")
    print("|---|---|---|---|---|---|---|")
    for combo in COMBOS:
        e = expected_seconds(BASE_S, *combo)
        side = side_by_side(n // 4, combo, 0.3, seed=3)
        c, lt, f = side.cold, side.learnt, side.fixed
        print(
            f"| {combo[0]} · {combo[1]} s · {combo[2]} ({e:.0f} s) | {c.p95:.2f} s | "
            f"{statistics.fmean(c.gets):.1f} | {lt.p95:.2f} s | {statistics.fmean(lt.gets):.1f}"
            f" | {f.p95:.2f} s | {statistics.fmean(f.gets):.1f} |"
        )


@dataclass
class Measured:
    """Delays (emulated s) to the GET that saw the end and to the result; GETs; durations.

    `real` is the result delay with the work after the notice (download, ledger, the MCP
    layers) at real speed: time-scaling stretches that work by the speed factor, PiAPI would
    not. With webhooks the whole path after the end is that work.
    """

    noticed: list[float]
    answered: list[float]
    real: list[float]
    gets: list[int]
    spans: Spans

    def show(self, label: str) -> None:
        """Print one run's figures."""
        print(f"{label}: {len(self.gets)} tasks")
        rows = (("noticed", self.noticed), ("result ", self.answered), ("real   ", self.real))
        for name, values in rows:
            if values:
                print(
                    f"  {name} delay p50 {quantile(values, 0.5):5.2f} s  p95 "
                    f"{quantile(values, 0.95):5.2f} s  max {max(values):5.2f} s"
                )
        print(f"  GETs per task mean {statistics.fmean(self.gets):.2f} max {max(self.gets)}")


async def _run_tasks(
    client: Client, emulator: Emulator, count: int, limit: int, name: str, *, hooked: bool = False
) -> Measured:
    """`count` generate_video calls, `limit` at a time; measured on the emulator's clock."""
    out = Measured([], [], [], [], [])
    speed = emulator.config.speed
    limiter = anyio.CapacityLimiter(limit)

    async def one(i: int) -> None:
        async with limiter:
            # Distinct prompts: the same request within 10 minutes returns the earlier task.
            result = await client.call_tool("generate_video", {"prompt": f"{name} {i}"})
        arrived = emulator.now()
        data = result.structured_content or {}
        if result.is_error or not data.get("video_path"):
            raise RuntimeError(f"task {i} did not complete: {result.content}")
        task_id = str(data["task_id"])
        meta = emulator.task(task_id)["meta"]
        created, started, ended = (
            _epoch(meta[k]) for k in ("created_at", "started_at", "ended_at")
        )
        out.spans.append((started - created, ended - started))
        polls = [e.at for e in emulator.log if e.task_id == task_id and e.route == "get"]
        seen = max(polls) - ended if polls and max(polls) >= ended and not hooked else None
        if seen is not None:
            out.noticed.append(seen)
        out.answered.append(arrived - ended)
        base = seen if seen is not None else 0.0
        out.real.append(base + (arrived - ended - base) / speed)
        out.gets.append(emulator.gets(task_id))

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    return out


async def real_polling(count: int, speed: float, sigma: float, concurrency: int) -> None:
    """30 tasks of history, then `count` measured tasks, at emulated spread `sigma`."""
    timing = TimingParams(generate_sigma=sigma)
    config = EmulatorConfig(api_key=FAKE_KEY, speed=speed, seed=11, timing=timing)
    with (
        tempfile.TemporaryDirectory(prefix="hailuo-bench-") as tmp,
        running_emulator(config) as emulator,
    ):
        settings = emulator_settings(
            emulator.url, speed, Path(tmp), HAILUO_WAIT_SECONDS=str(900 / speed)
        )
        quiet_logs()
        async with Client(build_server(settings)) as client:
            with anyio.fail_after(120 + (HISTORY + count) * 900 / speed / concurrency):
                first = await _run_tasks(client, emulator, HISTORY, 2 * concurrency, "history")
                then = await _run_tasks(client, emulator, count, concurrency, "measured")
    print(
        f"\n== real run, polling: σ {sigma:g}, v2.3 · 6 s · 768 through the MCP tool layer, "
        f"emulator x{speed:g}, HAILUO_EXPECTED_SECONDS={BASE_S / speed:g} (emulated seconds)"
    )
    first.show(f"while the history grows from 0 to {HISTORY} ({2 * concurrency} at a time)")
    then.show(f"after {HISTORY} tasks of history ({concurrency} at a time)")
    # The same tasks simulated: our schedule with this run's history, and the fixed poller.
    known = Durations.learnt(first.spans, BASE_S)
    ours = simulate(then.spans, lambda: PollSchedule(BASE_S, durations=known, base_s=BASE_S))
    fixed = simulate(then.spans, lambda: FixedPoller(FIXED_S))
    print(f"  same tasks simulated (p50 | p95 | max | GETs), ours:  {ours.cells()}")
    print(f"  same tasks simulated, fixed {FIXED_S:g} s poller:      {fixed.cells()}")


async def real_webhook(count: int, speed: float, concurrency: int) -> None:
    """`count` tasks with webhooks on: the emulator delivers each end to our receiver."""
    config = EmulatorConfig(api_key=FAKE_KEY, speed=speed, seed=12)
    with (
        tempfile.TemporaryDirectory(prefix="hailuo-bench-") as tmp,
        running_emulator(config) as emulator,
    ):
        port = _free_port()
        settings = emulator_settings(
            emulator.url,
            speed,
            Path(tmp),
            HAILUO_WAIT_SECONDS=str(900 / speed),
            HAILUO_PUBLIC_URL=f"http://127.0.0.1:{port}",
            HAILUO_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
        )
        quiet_logs()
        async with Client(build_server(settings)) as client:
            with anyio.fail_after(120 + count * 900 / speed / concurrency):
                measured = await _run_tasks(
                    client, emulator, count, concurrency, "hooked", hooked=True
                )
        delivered = sum(1 for d in emulator.webhook_deliveries if d.status_code == 200)
    print(
        f"\n== real run, webhooks: σ {config.timing.generate_sigma:g}, emulator x{speed:g}, "
        f"deliveries answered 200: {delivered} (emulated seconds; real-time overheads count "
        f"x{speed:g})"
    )
    measured.show("webhook path (a delivery, not a GET, tells the end)")


def _epoch(stamp: str) -> float:
    """PiAPI's RFC 3339 stamp, read as the client reads it, to epoch seconds."""
    moment = parse_time(stamp)
    assert moment is not None, stamp
    return moment.timestamp()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    """Run the simulation, then the real confirmation runs."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000, help="simulated tasks per spread")
    parser.add_argument(
        "--real", type=int, default=40, help="measured tasks per real run (0: skip)"
    )
    parser.add_argument("--speed", type=float, default=10.0, help="emulator speed, polling runs")
    parser.add_argument("--webhook-speed", type=float, default=2.0, help="emulator speed, webhooks")
    parser.add_argument("--real-sigmas", default="0.3", help="spreads of the real polling runs")
    parser.add_argument("--concurrency", type=int, default=5, help="tasks in flight, real runs")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    simulation(args.tasks)
    if args.real:
        for sigma in (float(s) for s in args.real_sigmas.split(",")):
            anyio.run(real_polling, args.real, args.speed, sigma, args.concurrency)
        # Webhook waits make few GETs: all at once, and a slower clock inflates overheads less.
        anyio.run(real_webhook, args.real, args.webhook_speed, args.real)


if __name__ == "__main__":
    main()
