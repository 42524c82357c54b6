"""Reading a saved video as a resource: peak memory of the old read against the streamed one.

The emulator (in its own process) serves a synthetic 200 MB output; the real flow saves it
(generate_video through an in-process client). Then each read runs in a fresh child process
(`--child`), interleaved, through the server's real resources/read path and an in-process
`mcp.Client` (2026-07-28, the Python client's default):

- old: what the server did before, a resource function returning the file's bytes
  (`read_bytes`), which the SDK turns into base64 (`b64encode(...).decode()`);
- streamed: ``hailuo://videos/<id>.mp4``, encoded from disk in 3 MiB chunks into one buffer;
- parts: the player's way, ``.../parts/<index>`` one after another, each decoded and hashed,
  then dropped (what a reader that streams the parts holds).

Peak memory is measured twice per read: tracemalloc's peak of Python allocations during the
read, and the RSS high-water mark (VmHWM, reset through /proc/self/clear_refs) minus the RSS
before it. Both include the client's copy of the answer, which any client holds. The bytes
read are checked against the file after the measurement.

    .venv/bin/python bench/resource_read.py [--runs 3] [--mb 200]
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import json
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
from _emulator_proc import emulator_process
from _util import PYTHON, emulator_settings, machine, quiet_logs, rss_mb, summary
from mcp import Client
from mcp.server.mcpserver import Context
from mcp.types import BlobResourceContents

from hailuo_mcp.digests import file_sha256
from hailuo_mcp.emulator import EmulatorConfig
from hailuo_mcp.hailuo_server import HailuoServer
from hailuo_mcp.player import PART_META_KEY, video_part_uri
from hailuo_mcp.runtime import runtime_of
from hailuo_mcp.server import build_server
from hailuo_mcp.task_resource import task_uri
from hailuo_mcp.tool_results import video_uri

VARIANTS = ("old", "streamed", "parts")
OLD_URI = "bench://old-read/{task_id}.mp4"
SPEED = 100.0


def _add_old_read(server: HailuoServer) -> None:
    """The read as it was before: the file's bytes from a resource function (the SDK encodes)."""

    @server.resource(OLD_URI, name="old_read", mime_type="video/mp4")
    async def old_read(task_id: str, ctx: Context) -> bytes:
        record = await runtime_of(ctx).service.ledger.get(task_id)
        assert record is not None and record.video_path
        return await anyio.Path(record.video_path).read_bytes()


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


async def _blob(client: Client, uri: str) -> BlobResourceContents:
    (content,) = (await client.read_resource(uri)).contents
    assert isinstance(content, BlobResourceContents)
    return content


async def _measure(variant: str, tmp: Path, url: str, task_id: str) -> dict[str, Any]:
    server = build_server(emulator_settings(url, SPEED, tmp))
    _add_old_read(server)
    async with Client(server) as client:
        # Warm-up: the task lookup, the part reader and the SDK's read path are all loaded.
        await client.read_resource(task_uri(task_id))
        await _blob(client, video_part_uri(task_id, 0))
        gc.collect()
        before = rss_mb()
        tracemalloc.start()
        traced_before = tracemalloc.get_traced_memory()[0]
        _reset_peak()
        started = time.perf_counter()
        digest = hashlib.sha256()
        held: BlobResourceContents | None = None
        if variant == "parts":
            index, count = 0, 1
            while index < count:
                part = await _blob(client, video_part_uri(task_id, index))
                count = (part.meta or {})[PART_META_KEY]["count"]
                digest.update(base64.b64decode(part.blob))
                index += 1
        else:
            uri = OLD_URI.format(task_id=task_id) if variant == "old" else video_uri(task_id)
            held = await _blob(client, uri)
        seconds = time.perf_counter() - started
        traced_peak = tracemalloc.get_traced_memory()[1] - traced_before
        growth = rss_mb(field="VmHWM") - before
        tracemalloc.stop()
        if held is not None:
            digest.update(base64.b64decode(held.blob))
    return {
        "seconds": seconds,
        "traced_peak_mb": traced_peak / 1e6,
        "rss_growth_mb": growth,
        "sha256": digest.hexdigest(),
    }


def child(variant: str, tmp: str, url: str, task_id: str) -> None:
    """One measured read in this process; prints its figures as JSON."""
    quiet_logs()
    figures = anyio.run(_measure, variant, Path(tmp), url, task_id)
    print(json.dumps(figures))


async def _generate(tmp: Path, url: str) -> tuple[str, Path]:
    async with Client(build_server(emulator_settings(url, SPEED, tmp))) as client:
        with anyio.fail_after(300):
            result = await client.call_tool("generate_video", {"prompt": "a long take"})
    data = result.structured_content or {}
    assert not result.is_error and data.get("video_path"), result
    return str(data["task_id"]), Path(data["video_path"])


def main() -> None:
    """Save one large video, read it in interleaved children, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "DIR", "URL", "TASK_ID"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    quiet_logs()
    size = args.mb * 1024 * 1024
    config = EmulatorConfig(output_size=size, fixed_durations=(0.0, 0.0))
    results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with emulator_process(config) as (url, _), tempfile.TemporaryDirectory() as tmp:
        task_id, video = anyio.run(_generate, Path(tmp), url)
        assert video.stat().st_size == size, "short download"
        expected = file_sha256(video)
        for i in range(args.runs):
            order = VARIANTS if i % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                done = subprocess.run(
                    [PYTHON, __file__, "--child", variant, tmp, url, task_id],
                    capture_output=True,
                    text=True,
                )
                if done.returncode:
                    raise RuntimeError(f"the {variant} child failed:\n{done.stderr[-3000:]}")
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                assert figures["sha256"] == expected, f"{variant}: the bytes read differ"
                results[variant].append(figures)
    print(f"machine: {machine()}")
    print(
        f"{args.runs} reads of a {args.mb} MB ({size / 1e6:.0f} MB) video per variant, "
        "interleaved, each in a fresh process (in-process client, 2026-07-28)"
    )
    medians: dict[str, dict[str, float]] = {}
    for variant, rows in results.items():
        medians[variant] = {}
        for key, unit, digits in (
            ("traced_peak_mb", " MB", 0),
            ("rss_growth_mb", " MB", 0),
            ("seconds", " s", 2),
        ):
            values = [row[key] for row in rows]
            medians[variant][key] = statistics.median(values)
            print(f"{variant:>9} {key:<15} {summary(values, unit, digits)}")
    for variant in ("streamed", "parts"):
        traced = medians[variant]["traced_peak_mb"] / medians["old"]["traced_peak_mb"]
        rss = medians[variant]["rss_growth_mb"] / medians["old"]["rss_growth_mb"]
        print(f"{variant} / old: traced peak {traced:.2f}x, RSS growth {rss:.2f}x")
    print(f"file size / old traced peak: {size / 1e6 / medians['old']['traced_peak_mb']:.2f}")


if __name__ == "__main__":
    main()
