"""Load: hundreds of generate_video calls in flight in one server process, all completed.

A real `python -m hailuo_mcp` over stdio gets N (default 250) concurrent calls against the
emulator at 50x speed (the duration model's spread: about 0.6-2.5 s per task). The test asserts
correctness only: every call completes with its own complete file, at least 200 were in flight
at once, the ledger holds exactly one row per created task and passes `PRAGMA integrity_check`,
no temporary file is left, stdout carries only protocol messages, and peak memory stays under a
generous bound (a leak guard, not a figure).

The figures for docs/RELIABILITY.md (wall time, peak RSS, upstream requests per task, the
slowest `estimate_cost` round trip while the load runs: an upper bound on event-loop stalls) are
measured here and appended to HAILUO_RELIABILITY_REPORT when it is set. HAILUO_LOAD_TASKS
changes N for a measurement run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from hailuo_mcp.emulator import Emulator
from hailuo_mcp.emulator.video import sample_video
from hailuo_mcp.server import build_server
from tests.reliability_stdio import StdioServer, server_env, stdio_server
from tests.support import KEY, make_settings

TASKS = int(os.environ.get("HAILUO_LOAD_TASKS", "250"))
SPEED = 50.0
PROBE_EVERY_S = 0.05
PEAK_RSS_BOUND_KB = 1024 * 1024  # 1 GiB: far above the figures measured, below a runaway leak

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.emulator(clock=SPEED, seed=23, fixed_durations=None),
]


async def probe(server: StdioServer, stop: anyio.Event, samples: list[tuple[float, float]]) -> None:
    """Time a cheap tool call every 50 ms until `stop`: how long a client waits for any answer.

    Samples are (seconds since the probe began, round trip).
    """
    began = time.perf_counter()
    while not stop.is_set():
        started = time.perf_counter()
        answer = await server.call_tool("estimate_cost", {})
        samples.append((started - began, time.perf_counter() - started))
        assert answer["structuredContent"]["usd"] == 0.23
        await anyio.sleep(PROBE_EVERY_S)


async def test_hundreds_of_concurrent_generations_all_complete_each_with_its_own_file(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = server_env(emulator, tmp_path, KEY, HAILUO_WAIT_SECONDS="120")
    results: list[dict[str, Any]] = []
    in_flight = 0
    most_in_flight = 0
    idle: list[float] = []
    busy: list[tuple[float, float]] = []

    async def generate(server: StdioServer, n: int) -> None:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        results.append(await server.call_tool("generate_video", {"prompt": f"clip {n}"}))
        in_flight -= 1

    async with stdio_server(env) as server:
        for _ in range(20):  # the idle round trip, for comparison
            started = time.perf_counter()
            await server.call_tool("estimate_cost", {})
            idle.append(time.perf_counter() - started)
        rss_before_kb = server.status("VmRSS")
        started = time.perf_counter()
        with anyio.fail_after(90):
            async with anyio.create_task_group() as group:
                stop = anyio.Event()
                group.start_soon(probe, server, stop, busy)
                async with anyio.create_task_group() as calls:
                    for n in range(TASKS):
                        calls.start_soon(generate, server, n)
                stop.set()
        wall_s = time.perf_counter() - started
        peak_kb = server.status("VmHWM")
        rss_after_kb = server.status("VmRSS")
        assert server.not_protocol == []

    # Correctness: all done, each with its own complete file, nothing lost or doubled.
    assert len(results) == TASKS and most_in_flight >= min(TASKS, 200)
    assert [r for r in results if r.get("isError")] == []
    paths = [Path(r["structuredContent"]["video_path"]) for r in results]
    assert len(set(paths)) == TASKS
    size = len(sample_video())
    assert all(p.stat().st_size == size for p in paths)
    videos = tmp_path / "videos"
    # No temporary file left: only the videos (and the poster frame saved beside each).
    left = [p for p in videos.iterdir() if not p.name.endswith(".poster.jpg")]
    assert sorted(left) == sorted(paths)
    with sqlite3.connect(tmp_path / "state" / "tasks.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = [r[0] for r in conn.execute("SELECT task_id FROM tasks WHERE status = 'completed'")]
    assert sorted(ids) == sorted(emulator.task_ids())
    assert emulator.creates() == emulator.creates_recorded() == TASKS
    assert peak_kb < PEAK_RSS_BOUND_KB

    downloads = sum(1 for entry in emulator.log if entry.route == "download")
    figures = {
        "load": TASKS,
        "most_in_flight": most_in_flight,
        "wall_s": round(wall_s, 2),
        "rss_before_mb": round(rss_before_kb / 1024, 1),
        "rss_after_mb": round(rss_after_kb / 1024, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "creates_per_task": emulator.creates() / TASKS,
        "gets_per_task": round(emulator.gets() / TASKS, 2),
        "downloads_per_task": downloads / TASKS,
        "idle_round_trip_ms": round(statistics.median(idle) * 1000, 2),
        "busy_round_trip_median_ms": round(statistics.median(rt for _, rt in busy) * 1000, 2),
        "busy_round_trip_max_ms": round(max(rt for _, rt in busy) * 1000, 2),
        "busy_round_trip_max_at_s": round(max(busy, key=lambda s: s[1])[0], 2),
        "busy_round_trip_after_1s_max_ms": round(
            max((rt for at, rt in busy if at >= 1.0), default=0.0) * 1000, 2
        ),
        "probes": len(busy),
    }
    path = os.environ.get("HAILUO_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(figures) + "\n")


async def lag_probe(stop: anyio.Event, lags: list[float]) -> None:
    """How late a 10 ms sleep wakes up, over and over: the event loop's stall, sampled."""
    while not stop.is_set():
        started = time.perf_counter()
        await anyio.sleep(0.01)
        lags.append(time.perf_counter() - started - 0.01)


async def test_the_event_loop_keeps_turning_while_hundreds_of_generations_run_in_process(
    emulator: Emulator, tmp_path: Path
) -> None:
    # In-process, the probe shares the server's event loop (and the CPU with the client and the
    # emulator's thread), so what it measures is the loop's own stall.
    settings = make_settings(emulator, tmp_path, HAILUO_WAIT_SECONDS="120")
    results: list[CallToolResult] = []
    lags: list[float] = []

    async def generate(client: Client, n: int) -> None:
        results.append(await client.call_tool("generate_video", {"prompt": f"clip {n}"}))

    async with Client(build_server(settings)) as client:
        await client.call_tool("list_tasks", {})  # the runtime is open
        with anyio.fail_after(90):
            async with anyio.create_task_group() as group:
                stop = anyio.Event()
                group.start_soon(lag_probe, stop, lags)
                async with anyio.create_task_group() as calls:
                    for n in range(TASKS):
                        calls.start_soon(generate, client, n)
                stop.set()
    assert len(results) == TASKS and not any(r.is_error for r in results)
    assert len({(r.structured_content or {})["video_path"] for r in results}) == TASKS
    assert emulator.creates() == TASKS
    figures = {
        "in_process_load": TASKS,
        "loop_lag_p50_ms": round(statistics.median(lags) * 1000, 2),
        "loop_lag_p99_ms": round(sorted(lags)[int(len(lags) * 0.99)] * 1000, 2),
        "loop_lag_max_ms": round(max(lags) * 1000, 2),
        "lag_samples": len(lags),
    }
    path = os.environ.get("HAILUO_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(figures) + "\n")
