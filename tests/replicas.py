"""Real replicas for the multi-replica tests and bench/http_replicas.py: processes, not mocks.

- The PiAPI emulator in a child process of its own (`python -m tests.replicas emulator`), so its
  CPU is not the test's and a replica's SIGKILL cannot touch it. Its configuration is the test
  emulators' one (`tests.support.config_for`, the key included): only where it runs differs.
  Beside PiAPI's routes it serves a small control address (stdlib HTTP) that answers what the
  emulator saw: every task with its prompt and status, and how many creates arrived.
- Replicas: `python -m hailuo_mcp serve --transport streamable-http`, each with its own port and
  HAILUO_STATE_DIR, all on one PostgreSQL database and one HAILUO_OUTPUT_DIR; ready when
  /readyz answers 200; stopped with SIGKILL (a crash) or SIGTERM.
- The MCP Python SDK client over streamable HTTP, and read-only queries of the shared ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
from mcp import Client
from psycopg.rows import dict_row

from hailuo_mcp.emulator import Emulator, running_emulator
from tests.servers import mcp_over_http
from tests.support import KEY, config_for

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


# The emulator's child process


class _Control(BaseHTTPRequestHandler):
    """GET /tasks and /stats: what the emulator in this process saw."""

    emulator: Emulator

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path == "/tasks":
            body: Any = []
            for task_id in self.emulator.task_ids():
                task = self.emulator.task(task_id)
                body.append(
                    {
                        "task_id": task_id,
                        "prompt": (task.get("input") or {}).get("prompt"),
                        "status": task.get("status"),
                    }
                )
        elif self.path == "/stats":
            log = self.emulator.log
            body = {
                "creates": self.emulator.creates(),
                "creates_recorded": self.emulator.creates_recorded(),
                "gets": self.emulator.gets(),
                "downloads": sum(1 for entry in log if entry.route == "download"),
            }
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        """Quiet: the control address is polled often."""


def _serve_emulator(speed: float, queue_s: float, generate_s: float) -> None:
    """The child's body: PiAPI's emulator and its control address, until stdin closes."""
    config = config_for(speed, fixed_durations=(queue_s, generate_s), seed=15, log_limit=10**6)
    with running_emulator(config) as emulator:
        handler = type("Control", (_Control,), {"emulator": emulator})
        control = ThreadingHTTPServer((LOOPBACK, 0), handler)
        threading.Thread(target=control.serve_forever, daemon=True).start()
        line = {"url": emulator.url, "control": f"http://{LOOPBACK}:{control.server_port}"}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        # The parent closes stdin (or dies): that is the signal to stop.
        sys.stdin.read()
        control.shutdown()


@dataclass
class EmulatorProcess:
    """The emulator's child process: PiAPI at `url`, what it saw at `control`."""

    process: subprocess.Popen[str]
    url: str
    control: str
    speed: float

    @property
    def upload_url(self) -> str:
        """PiAPI's upload endpoint on the emulator."""
        return f"{self.url}/api/ephemeral_resource"

    async def tasks(self) -> list[dict[str, Any]]:
        """Every task the emulator created, oldest first: task_id, prompt, status."""
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            answer = await http.get(f"{self.control}/tasks")
            answer.raise_for_status()
            found: list[dict[str, Any]] = answer.json()
            return found

    async def stats(self) -> dict[str, int]:
        """Counters: creates received, creates recorded, gets, downloads."""
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            answer = await http.get(f"{self.control}/stats")
            answer.raise_for_status()
            found: dict[str, int] = answer.json()
            return found


@contextmanager
def emulator_process(
    speed: float, *, queue_s: float = 6.0, generate_s: float = 70.0
) -> Iterator[EmulatorProcess]:
    """Run the emulator in a child; every task queues `queue_s` and generates `generate_s`
    emulated seconds (divide by `speed` for real seconds)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.replicas",
            "emulator",
            f"--speed={speed}",
            f"--queue={queue_s}",
            f"--generate={generate_s}",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process did not start")
        where = json.loads(line)
        yield EmulatorProcess(process, where["url"], where["control"], speed)
    finally:
        if process.stdin is not None:
            with suppress(OSError):
                process.stdin.close()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# Replicas


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def replica_env(
    emulator: EmulatorProcess, database_url: str, output_dir: Path, state_dir: Path, **extra: str
) -> dict[str, str]:
    """Every variable a replica needs (the child inherits nothing else)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(state_dir),
        "PIAPI_API_KEY": KEY,
        "PIAPI_BASE_URL": emulator.url,
        "PIAPI_UPLOAD_URL": emulator.upload_url,
        "HAILUO_DATABASE_URL": database_url,
        "HAILUO_OUTPUT_DIR": str(output_dir),
        "HAILUO_STATE_DIR": str(state_dir),
        "HAILUO_EXPECTED_SECONDS": str(77 / emulator.speed),
        "HAILUO_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


@dataclass
class Replica:
    """One `hailuo-mcp serve --transport streamable-http` process."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    killed_at: float | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The replica's base URL (the MCP endpoint is `url + "/mcp"`)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        """The process id (the middle part of its lease holder id)."""
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Started and not stopped."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (not yet ready: see `wait_ready`)."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hailuo_mcp",
                "serve",
                "--transport",
                "streamable-http",
                "--host",
                LOOPBACK,
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self) -> bool:
        """Whether /readyz answers 200 now (resources open, the ledger answers)."""
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
                return (await http.get(f"{self.url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until /readyz says ready; fails with the replica's log if it died or took too long."""
        deadline = time.monotonic() + timeout
        while not await self.ready():
            if not self.alive or time.monotonic() > deadline:
                raise RuntimeError(f"replica {self.name} did not become ready:\n{self.log()}")
            await anyio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no release of its leases, like a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_S)
        self.killed_at = time.monotonic()

    def stop(self) -> None:
        """SIGTERM and reap; SIGKILL if it does not exit in time."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        """Everything the replica wrote to stdout and stderr."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@asynccontextmanager
async def running_replicas(
    count: int,
    emulator: EmulatorProcess,
    database_url: str,
    root: Path,
    **extra: str,
) -> AsyncIterator[list[Replica]]:
    """Start `count` replicas sharing `database_url` and `root/videos`; stop them afterwards."""
    output = root / "videos"
    replicas = []
    for index in range(count):
        state = root / f"replica{index}"
        state.mkdir(parents=True, exist_ok=True)
        env = replica_env(emulator, database_url, output, state, **extra)
        replicas.append(Replica(f"r{index}", free_port(), env, root / f"replica{index}.log"))
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            await replica.wait_ready()
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


@asynccontextmanager
async def mcp_client(url: str, *, read_s: float = 60.0) -> AsyncIterator[Client]:
    """The MCP Python SDK client on a replica's streamable HTTP endpoint (2025-11-25)."""
    async with mcp_over_http(url, read_s=read_s) as client:
        yield client


# The shared ledger, read directly


async def ledger_rows(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Rows of one read-only query on the shared ledger, as dicts."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchall() if cursor.description else []


def holder_of(pid: int) -> str:
    """A LIKE pattern matching the lease holder ids of the process `pid` (host:pid:random)."""
    return f"%:{pid}:%"


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.replicas emulator --speed S`: the emulator's child process."""
    parser = argparse.ArgumentParser(prog="tests.replicas")
    commands = parser.add_subparsers(dest="command", required=True)
    emulator = commands.add_parser("emulator")
    emulator.add_argument("--speed", type=float, required=True)
    emulator.add_argument("--queue", type=float, default=6.0)
    emulator.add_argument("--generate", type=float, default=70.0)
    args = parser.parse_args(argv)
    _serve_emulator(args.speed, args.queue, args.generate)


if __name__ == "__main__":
    main()
