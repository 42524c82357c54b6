"""Tool round trip: `estimate_cost` over stdio against the bare server's trivial tool.

Both servers run as real subprocesses (`python -m hailuo_mcp`, `bench/bare_server.py`); one
client sends `tools/call` requests one after another and times each answer. After a warm-up,
the two servers take turns in blocks of 50 calls, so drift on a busy machine hits both.

    .venv/bin/python bench/round_trip.py [--calls 500]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import BARE_SERVER, PYTHON, StdioPeer, machine, quantile, server_env, summary

TARGET_P50_MS = 3.0
BLOCK = 50
WARM_UP = 50


def call(peer: StdioPeer, name: str, arguments: dict[str, Any]) -> float:
    """One tools/call; its round trip in ms."""
    started = time.perf_counter()
    rid = peer.request("tools/call", {"name": name, "arguments": arguments})
    answer = peer.answer(rid)
    elapsed = (time.perf_counter() - started) * 1000
    result = answer.get("result") or {}
    if "error" in answer or result.get("isError"):
        raise RuntimeError(f"{name} failed: {answer}")
    return elapsed


def main() -> None:
    """Time both servers' tool calls and print medians, spread and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="timed calls per server")
    args = parser.parse_args()
    tools = {
        "bare": ("echo", {"text": "hello"}),
        "ours": ("estimate_cost", {"model": "v2.3", "duration": 6, "resolution": 768}),
    }
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="hailuo-bench-") as tmp:
        env = server_env(Path(tmp))
        peers = {
            "bare": StdioPeer([PYTHON, BARE_SERVER], env),
            "ours": StdioPeer([PYTHON, "-m", "hailuo_mcp"], env),
        }
        try:
            for name, peer in peers.items():
                peer.initialize()
                for _ in range(WARM_UP):
                    call(peer, *tools[name])
            while len(times["ours"]) < args.calls:
                for name, peer in peers.items():
                    for _ in range(min(BLOCK, args.calls - len(times[name]))):
                        times[name].append(call(peer, *tools[name]))
        finally:
            for peer in peers.values():
                peer.close()
    print(f"machine: {machine()}")
    print(f"{args.calls} sequential tools/call per server over stdio, after {WARM_UP} warm-up")
    for name, values in times.items():
        print(
            f"{name:>4} {tools[name][0]:>13}: {summary(values, ' ms', 2)}, "
            f"p99 {quantile(values, 0.99):.2f} ms"
        )
    ratio = statistics.median(times["ours"]) / statistics.median(times["bare"])
    print(
        f"ours p50 {statistics.median(times['ours']):.2f} ms (target <= {TARGET_P50_MS:g} ms); "
        f"ratio to bare {ratio:.2f}x"
    )


if __name__ == "__main__":
    main()
