"""A raw JSON-RPC driver for `python -m hailuo_mcp` over stdio, for the reliability tests.

`mcp.Client` hides the child process; these tests need its pid (to SIGKILL it), its stderr
(to scan for secrets) and every stdout line (to prove nothing but protocol messages reach it).
The child inherits nothing: `server_env` passes every setting, PATH and HOME included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from hailuo_mcp.emulator import Emulator

PROTOCOL_VERSION = "2025-11-25"
_MAX_LINE = 64 * 1024 * 1024


def server_env(emulator: Emulator, root: Path, key: str, **extra: str) -> dict[str, str]:
    """Every variable the child needs, aimed at `emulator`, with its folders under `root`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root / "home"),
        "PIAPI_API_KEY": key,
        "PIAPI_BASE_URL": emulator.url,
        "PIAPI_UPLOAD_URL": emulator.upload_url,
        "HAILUO_OUTPUT_DIR": str(root / "videos"),
        "HAILUO_STATE_DIR": str(root / "state"),
        "HAILUO_EXPECTED_SECONDS": str(77 / emulator.config.speed),
        "HAILUO_WAIT_SECONDS": "30",
        "HAILUO_IMAGE_DIRS": str(root),
    }
    env.update(extra)
    return env


class RpcError(Exception):
    """The server answered a request with a JSON-RPC error (a protocol fault)."""


@dataclass
class _Pending:
    done: anyio.Event = field(default_factory=anyio.Event)
    answer: dict[str, Any] | None = None


class StdioServer:
    """One running `python -m hailuo_mcp`, driven with raw JSON-RPC lines."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.stderr = bytearray()
        self.messages: list[dict[str, Any]] = []  # everything read from stdout, in order
        self.not_protocol: list[bytes] = []  # stdout lines that are not JSON-RPC 2.0
        self.progress: dict[str, list[dict[str, Any]]] = {}
        self._ids = count(1)
        self._pending: dict[int, _Pending] = {}
        self._send_lock = anyio.Lock()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        async with self._send_lock:
            await self.process.stdin.send(json.dumps(message).encode() + b"\n")

    async def send_line(self, line: bytes) -> None:
        """Write one raw line to the server's stdin (for garbage-on-the-wire tests)."""
        assert self.process.stdin is not None
        async with self._send_lock:
            await self.process.stdin.send(line + b"\n")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer; raise RpcError on a protocol error."""
        request_id = next(self._ids)
        pending = self._pending[request_id] = _Pending()
        await self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        await pending.done.wait()
        answer = pending.answer
        if answer is None:
            raise RpcError(f"the server went away before answering {method}")
        if "error" in answer:
            raise RpcError(json.dumps(answer["error"]))
        result = answer["result"]
        assert isinstance(result, dict)
        return result

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, progress_token: str | None = None
    ) -> dict[str, Any]:
        """`tools/call`; with a progress token, notifications land in `progress[token]`."""
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if progress_token is not None:
            params["_meta"] = {"progressToken": progress_token}
            self.progress.setdefault(progress_token, [])
        return await self.request("tools/call", params)

    async def _initialize(self) -> None:
        await self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "reliability-tests", "version": "1"},
            },
        )
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        stream = BufferedByteReceiveStream(self.process.stdout)
        try:
            while True:
                line = await stream.receive_until(b"\n", _MAX_LINE)
                self._take(line)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
            pass
        finally:
            for pending in self._pending.values():
                pending.done.set()

    def _take(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self.not_protocol.append(line)
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self.not_protocol.append(line)
            return
        self.messages.append(message)
        if "id" in message and ("result" in message or "error" in message):
            pending = self._pending.get(message["id"])
            if pending is not None:
                pending.answer = message
                pending.done.set()
        elif message.get("method") == "notifications/progress":
            params = message.get("params", {})
            self.progress.setdefault(str(params.get("progressToken")), []).append(params)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        try:
            async for chunk in self.process.stderr:
                self.stderr.extend(chunk)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass

    def kill(self) -> None:
        """SIGKILL the child: no clean-up, no flush, like a crash or an OOM kill."""
        self.process.kill()

    def status(self, name: str) -> int:
        """A `/proc/<pid>/status` figure in kB (e.g. VmRSS, VmHWM); Linux only."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise KeyError(name)


@asynccontextmanager
async def stdio_server(
    env: Mapping[str, str], *, module: str = "hailuo_mcp"
) -> AsyncIterator[StdioServer]:
    """Start the server, run the initialize handshake, yield it; close or reap it after."""
    process = await anyio.open_process(
        [sys.executable, "-m", module],
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    server = StdioServer(process)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server._read_stdout)
            group.start_soon(server._read_stderr)
            with anyio.fail_after(30):
                await server._initialize()
            try:
                yield server
            finally:
                with anyio.CancelScope(shield=True):
                    await _stop(process)
    finally:
        with anyio.CancelScope(shield=True):
            await process.aclose()


async def _stop(process: Process) -> None:
    """Close stdin (a clean stdio shutdown); kill the child if it does not exit in time."""
    if process.returncode is None and process.stdin is not None:
        await process.stdin.aclose()
    with anyio.move_on_after(10):
        await process.wait()
        return
    process.kill()
    await process.wait()
