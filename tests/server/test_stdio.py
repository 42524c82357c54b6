"""The real server process over stdio: stdout carries JSON-RPC and nothing else."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pytest

from hailuo_mcp.emulator import Emulator
from tests.support import KEY

pytestmark = pytest.mark.emulator(clock=100, seed=3, fixed_durations=None)


def server_env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PIAPI_API_KEY": KEY,
        "PIAPI_BASE_URL": emulator.url,
        "PIAPI_UPLOAD_URL": emulator.upload_url,
        "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
        "HAILUO_WAIT_SECONDS": "30",
        "HAILUO_EXPECTED_SECONDS": "0.77",
        "HAILUO_LOG_LEVEL": "DEBUG",
    }


def pump(stream: IO[bytes], lines: queue.Queue[bytes]) -> None:
    for line in iter(stream.readline, b""):
        lines.put(line)


def send(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()


def wait_for(lines: queue.Queue[bytes], seen: list[bytes], request_id: int) -> dict[str, Any]:
    while True:
        line = lines.get(timeout=30)
        seen.append(line)
        message = json.loads(line)
        if message.get("id") == request_id:
            return dict(message)


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The keyless demo server: it starts its own emulator (uvicorn) inside the process."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HAILUO_DEMO": "1",
        "HAILUO_DEMO_SPEED": "100",
        "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
        "HAILUO_LOG_LEVEL": "DEBUG",
    }


@pytest.mark.parametrize("mode", ["piapi", "demo"])
def test_a_generation_over_stdio_writes_only_json_rpc_to_stdout(
    emulator: Emulator, tmp_path: Path, mode: str
) -> None:
    env = server_env(emulator, tmp_path) if mode == "piapi" else demo_env(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "hailuo_mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    lines: queue.Queue[bytes] = queue.Queue()
    errors: queue.Queue[bytes] = queue.Queue()
    readers = [
        threading.Thread(target=pump, args=(process.stdout, lines), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, errors), daemon=True),
    ]
    for reader in readers:
        reader.start()
    seen: list[bytes] = []
    try:
        send(
            process,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "stdio-test", "version": "1"},
                },
            },
        )
        init = wait_for(lines, seen, 1)
        assert init["result"]["serverInfo"]["name"] == "hailuo-mcp"
        send(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        send(
            process,
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "generate_video",
                    "arguments": {"prompt": "autumn wind"},
                    "_meta": {"progressToken": "p1"},
                },
            },
        )
        result = wait_for(lines, seen, 2)["result"]
        assert result.get("isError") is not True, result
        assert Path(result["structuredContent"]["video_path"]).is_file()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=15)
        for reader in readers:
            reader.join(timeout=5)
        process.stdout.close()
        process.stderr.close()
    while not lines.empty():
        seen.append(lines.get_nowait())
    stderr = b"".join(errors.queue)
    for line in seen:
        message = json.loads(line)  # every stdout line is one JSON message
        assert message["jsonrpc"] == "2.0"
    assert any(json.loads(x).get("method") == "notifications/progress" for x in seen)
    assert b"created task" in stderr  # the log went to stderr, not stdout
    assert KEY.encode() not in stderr and all(KEY.encode() not in x for x in seen)
