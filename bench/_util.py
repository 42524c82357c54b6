"""Shared helpers for the benchmarks: summaries, machine facts, RSS, a stdio JSON-RPC peer."""

from __future__ import annotations

import json
import logging
import os
import platform
import selectors
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hailuo_mcp.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BARE_SERVER = str(ROOT / "bench" / "bare_server.py")
FAKE_KEY = "sk-bench-0000000000000000"


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; values need not be sorted."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float], unit: str = "", digits: int = 1) -> str:
    """'median (p10-p90, n=N)' for a sample."""
    if not values:
        return "no samples"
    med = statistics.median(values)
    return (
        f"{med:.{digits}f}{unit} (p10 {quantile(values, 0.1):.{digits}f}, "
        f"p90 {quantile(values, 0.9):.{digits}f}, n={len(values)})"
    )


def quiet_logs() -> None:
    """Keep the figures readable: the SDK and httpx log every request at INFO."""
    logging.disable(logging.INFO)


def machine() -> str:
    """One line naming the machine the figures come from."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A process's resident set (or VmHWM for the peak) in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found for pid {pid}")


def cpu_ms(pid: int) -> float:
    """CPU time a process has used so far (all its threads), in ms, from schedstat."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e6


def emulator_settings(url: str, speed: float, tmp: Path, **env: str) -> Settings:
    """Settings aimed at an emulator at `url`, the schedule scaled to its clock (as the demo)."""
    values = {
        "PIAPI_API_KEY": FAKE_KEY,
        "PIAPI_BASE_URL": url,
        "PIAPI_UPLOAD_URL": f"{url}/api/ephemeral_resource",
        "HAILUO_OUTPUT_DIR": str(tmp / "videos"),
        "HAILUO_STATE_DIR": str(tmp / "state"),
        "HAILUO_EXPECTED_SECONDS": str(77 / speed),
    }
    values.update(env)
    return Settings.from_env(values)


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment for a server child: what a desktop client passes, and HOME."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PIAPI_API_KEY": FAKE_KEY,
        # Nothing listens here; start-up makes no upstream request.
        "PIAPI_BASE_URL": "http://127.0.0.1:9",
        "HAILUO_LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


class StdioPeer:
    """A minimal MCP client over a child's stdio: newline-delimited JSON-RPC, bounded waits."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(ROOT),
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out = self.proc.stdout.fileno()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._out, selectors.EVENT_READ)
        self._buffer = b""
        self._next_id = 1

    def send(self, message: dict[str, Any]) -> None:
        """Write one message."""
        self._in.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self._in.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> int:
        """Send a request; return its id."""
        rid = self._next_id
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return rid

    def answer(self, rid: int, timeout: float = 30.0) -> dict[str, Any]:
        """Read messages until the answer to `rid` arrives (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                message: dict[str, Any] = json.loads(line)
                if message.get("id") == rid:
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                raise TimeoutError(f"no answer to request {rid} within {timeout} s")
            chunk = os.read(self._out, 1 << 16)
            if not chunk:
                raise RuntimeError("the server closed stdout")
            self._buffer += chunk

    def initialize(self) -> float:
        """Send initialize and read its answer; return seconds since spawn."""
        rid = self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
        )
        self.answer(rid)
        elapsed = time.perf_counter() - self.started
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return elapsed

    def close(self) -> None:
        """Close stdin (the server exits) and reap the child, killing it if it lingers."""
        try:
            self._in.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._selector.close()
