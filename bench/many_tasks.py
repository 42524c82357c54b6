"""Many tasks: 1000 generate_video calls in flight in one server process.

The calls go through the real MCP tool layer (an in-process `Client` on the server that
`hailuo-mcp serve` builds, the start-up GC freeze included) against an emulator in its own
process, so only our side's CPU and memory are measured. A ticker task sleeps 10 ms in a loop
and records how late it wakes (event-loop lag); peak RSS is VmHWM. By default the emulator and
the poll schedule run in real time (HAILUO_EXPECTED_SECONDS=77, ~80 s per task, ~11 GETs each):
the load a shared deployment sees. `--speed N` compresses time N-fold, which multiplies the
request rate by N: a stress margin, not a realistic load.

    .venv/bin/python bench/many_tasks.py [--tasks 1000] [--speed 1]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
from _emulator_proc import emulator_process
from _util import emulator_settings, machine, process_cpu_s, quantile, quiet_logs, rss_mb
from mcp import Client

from hailuo_mcp.emulator import EmulatorConfig

TARGET_RSS_MB = 200.0
TARGET_LAG_MS = 50.0
TICK_S = 0.01


def build(settings: Any) -> Any:
    """Build the server as `cli.main` does: GC paused while building, then frozen."""
    from hailuo_mcp.cli import build_long_lived_server

    return build_long_lived_server(settings)


async def load(url: str, count: int, speed: float, tmp: Path) -> dict[str, Any]:
    """Run `count` concurrent generate_video calls; return the figures."""
    settings = emulator_settings(url, speed, tmp, HAILUO_WAIT_SECONDS=str(3600))
    server = build(settings)
    quiet_logs()
    lags: list[float] = []
    lag_at: list[float] = []
    failures: list[str] = []
    durations: list[float] = []
    saved = 0
    in_flight = peak_in_flight = 0
    stop = anyio.Event()

    rss_seen: list[tuple[float, float, int]] = []  # (seconds since the start, MB, threads)

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await anyio.sleep(TICK_S)
            lags.append((time.perf_counter() - before - TICK_S) * 1000)
            lag_at.append(before)
            if len(lags) % 100 == 0:  # about once a second: when the peak comes, and threads
                rss_seen.append((before - started, rss_mb(), threading.active_count()))

    async with Client(server) as client:
        await client.call_tool("estimate_cost", {})  # the session is up
        idle_rss = rss_mb()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal saved, in_flight, peak_in_flight
            in_flight += 1
            peak_in_flight = max(peak_in_flight, in_flight)
            t0 = time.perf_counter()
            result = await client.call_tool("generate_video", {"prompt": f"load test {i}"})
            durations.append(time.perf_counter() - t0)
            in_flight -= 1
            data = result.structured_content or {}
            path = data.get("video_path")
            if not result.is_error and data.get("done") and path and Path(path).is_file():
                saved += 1
            else:
                failures.append(str(result.content)[:300])

        with anyio.fail_after(120 + 600 / speed):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(ticker)
                async with anyio.create_task_group() as calls:
                    for i in range(count):
                        calls.start_soon(one, i)
                stop.set()
        wall = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "saved": saved,
        "peak_in_flight": peak_in_flight,
        "idle_rss": idle_rss,
        "peak_rss": rss_mb(field="VmHWM"),
        "rss_seen": rss_seen,
        "lags": lags,
        "worst_lag_at": lag_at[lags.index(max(lags))] - started if lags else 0.0,
        "failures": failures,
        "wall": wall,
        "cpu": cpu,
        "durations": durations,
    }


def main() -> None:
    """Run the load and print the figures against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--speed", type=float, default=1.0, help="emulator time factor")
    args = parser.parse_args()
    config = EmulatorConfig(speed=args.speed, seed=3, log_limit=1000)
    with emulator_process(config) as (url, pid), tempfile.TemporaryDirectory() as tmp:
        emulator_cpu = process_cpu_s(pid)
        figures = anyio.run(load, url, args.tasks, args.speed, Path(tmp))
        emulator_cpu = process_cpu_s(pid) - emulator_cpu
    lags = figures["lags"]
    print(f"machine: {machine()}")
    print(
        f"{args.tasks} generate_video calls at once through the MCP tool layer, emulator x"
        f"{args.speed:g} in its own process, HAILUO_EXPECTED_SECONDS={77 / args.speed:g}"
    )
    print(
        f"completed and saved: {figures['saved']}/{args.tasks}; peak in flight "
        f"{figures['peak_in_flight']}; wall {figures['wall']:.1f} s; our CPU "
        f"{figures['cpu']:.1f} s ({100 * figures['cpu'] / figures['wall']:.0f} % of one core); "
        f"emulator CPU {emulator_cpu:.1f} s"
    )
    durations = figures["durations"]
    print(
        f"call duration: min {min(durations):.1f} s, median {statistics.median(durations):.1f} s, "
        f"max {max(durations):.1f} s"
    )
    print(
        f"RSS: idle {figures['idle_rss']:.1f} MB, peak {figures['peak_rss']:.1f} MB "
        f"(target <= {TARGET_RSS_MB:g} MB)"
    )
    seen = figures["rss_seen"]
    if seen:
        at, most, _ = max(seen, key=lambda row: row[1])
        threads = max(row[2] for row in seen)
        print(
            f"RSS sampled each ~1 s: highest {most:.1f} MB at {at:.0f} s; threads up to {threads}"
        )
    print(
        f"event-loop lag over {len(lags)} ticks: p50 {quantile(lags, 0.5):.1f} ms, "
        f"p99 {quantile(lags, 0.99):.1f} ms (target <= {TARGET_LAG_MS:g} ms), "
        f"max {max(lags):.1f} ms at {figures['worst_lag_at']:.1f} s"
    )
    for failure in figures["failures"][:5]:
        print(f"not saved: {failure}")


if __name__ == "__main__":
    main()
