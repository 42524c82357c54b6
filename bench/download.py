"""Download: peak RSS growth and throughput saving a 200 MB video, against a bare httpx stream.

The emulator serves a synthetic 200 MB output from its own process. Each measurement runs in a
fresh child process (`--child`), alternating ours (`VideoDownloader.download`: temp file, fsync,
atomic rename) and the baseline (a plain `httpx.AsyncClient` stream written to a file; also
shown with an fsync at the end, the durability ours pays for before its rename). RSS
growth is the child's peak RSS (VmHWM, reset after warm-up through /proc/self/clear_refs) minus
its RSS before the download.

    .venv/bin/python bench/download.py [--runs 15] [--mb 200]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx
from _emulator_proc import emulator_process
from _util import FAKE_KEY, PYTHON, emulator_settings, machine, rss_mb, summary

from hailuo_mcp.downloads import VideoDownloader
from hailuo_mcp.emulator import EmulatorConfig

TARGET_RSS_MB = 10.0
TARGET_THROUGHPUT = 0.80
CHUNK = 64 * 1024


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


async def _ours(url: str, video: str, folder: Path) -> tuple[int, float, float]:
    settings = emulator_settings(url, 1.0, folder)
    async with VideoDownloader(settings) as downloader:
        # Its httpx client is built on first use: build it before measuring, as the baseline's.
        downloader._http()
        before = rss_mb()
        _reset_peak()
        started = time.perf_counter()
        size = await downloader.download(video, folder / "out.mp4", task_id="bench")
        seconds = time.perf_counter() - started
    return size, seconds, rss_mb(field="VmHWM") - before


async def _bare(
    url: str, video: str, folder: Path, *, sync: bool = False
) -> tuple[int, float, float]:
    async with httpx.AsyncClient() as client:
        before = rss_mb()
        _reset_peak()
        started = time.perf_counter()
        size = 0
        async with client.stream("GET", video) as response:
            response.raise_for_status()
            with open(folder / "out.mp4", "wb") as file:
                async for chunk in response.aiter_bytes(CHUNK):
                    file.write(chunk)
                    size += len(chunk)
                if sync:
                    file.flush()
                    os.fsync(file.fileno())
        seconds = time.perf_counter() - started
    return size, seconds, rss_mb(field="VmHWM") - before


def child(kind: str, url: str, video: str, folder: str) -> None:
    """One measured download in this process; prints its figures as JSON."""
    if kind == "ours":
        size, seconds, growth = anyio.run(_ours, url, video, Path(folder))
    else:
        size, seconds, growth = anyio.run(
            functools.partial(_bare, sync=kind == "bare+fsync"), url, video, Path(folder)
        )
    print(json.dumps({"bytes": size, "seconds": seconds, "rss_growth_mb": growth}))


def output_url(base: str) -> str:
    """Create one task on the emulator and return its finished video's URL."""
    headers = {"x-api-key": FAKE_KEY}
    body = {"model": "hailuo", "task_type": "video_generation", "input": {"prompt": "bench"}}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        task_id = client.post("/api/v1/task", json=body).json()["data"]["task_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            data = client.get(f"/api/v1/task/{task_id}").json()["data"]
            if data["status"] == "completed":
                return str(data["output"]["video"])
            time.sleep(0.05)
    raise RuntimeError("the emulator's task did not complete")


def main() -> None:
    """Run the interleaved children and print both sides' figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--child", nargs=4, metavar=("KIND", "URL", "VIDEO", "DIR"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    config = EmulatorConfig(output_size=args.mb * 1024 * 1024, fixed_durations=(0.0, 0.0))
    results: dict[str, list[dict[str, float]]] = {"bare": [], "ours": [], "bare+fsync": []}
    with emulator_process(config) as (url, _), tempfile.TemporaryDirectory() as tmp:
        video = output_url(url)
        for i in range(args.runs):
            order = list(results) if i % 2 == 0 else list(reversed(results))
            for kind in order:
                folder = Path(tmp) / f"{kind}{i}"
                folder.mkdir()
                out = subprocess.run(
                    [PYTHON, __file__, "--child", kind, url, video, str(folder)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                results[kind].append(json.loads(out.strip().splitlines()[-1]))
                for file in folder.iterdir():
                    file.unlink()
    print(f"machine: {machine()}")
    print(f"{args.runs} downloads of {args.mb} MB each, interleaved, each in a fresh process")
    speeds: dict[str, list[float]] = {}
    for kind, rows in results.items():
        assert all(r["bytes"] == args.mb * 1024 * 1024 for r in rows), "short download"
        speeds[kind] = [r["bytes"] / r["seconds"] / 1e6 for r in rows]
        growth = [r["rss_growth_mb"] for r in rows]
        print(f"{kind:>10} throughput:      {summary(speeds[kind], ' MB/s', 0)}")
        print(f"{kind:>10} peak RSS growth: {summary(growth, ' MB', 1)}")
    ratio = statistics.median(speeds["ours"]) / statistics.median(speeds["bare"])
    print(f"ratio throughput ours/bare (medians): {ratio:.2f}  (target >= {TARGET_THROUGHPUT})")
    synced = statistics.median(speeds["ours"]) / statistics.median(speeds["bare+fsync"])
    print(f"ratio ours/bare+fsync (same durability): {synced:.2f}")
    worst = max(r["rss_growth_mb"] for r in results["ours"])
    print(f"ours worst peak RSS growth: {worst:.1f} MB  (target <= {TARGET_RSS_MB:g} MB)")


if __name__ == "__main__":
    sys.exit(main())
