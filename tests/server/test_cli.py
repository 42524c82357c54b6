"""The command line's own subcommands, run as a user runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_emulator_subcommand_serves_piapi_on_the_given_port(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hailuo_mcp", "emulator", "--port", str(port), "--speed", "1000"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        answer = None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"{url}/account/info", headers={"x-api-key": "any"})
            except httpx.TransportError:
                time.sleep(0.05)  # not listening yet
        assert answer is not None and answer.status_code == 200
        created = httpx.post(
            f"{url}/api/v1/task",
            json={"model": "hailuo", "task_type": "video_generation", "input": {"prompt": "x"}},
            headers={"x-api-key": "any"},
        ).json()
        # At a thousand times real speed the task may have left the queue before the answer is
        # written, so the create may say either; the poll below proves the clock runs fast.
        assert created["code"] == 200
        assert created["data"]["status"] in {"pending", "processing"}
        task_url = f"{url}/api/v1/task/{created['data']['task_id']}"
        status = created["data"]["status"]
        while status != "completed" and time.monotonic() < deadline + 20:
            time.sleep(0.05)
            status = httpx.get(task_url, headers={"x-api-key": "any"}).json()["data"]["status"]
        assert status == "completed"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_version_and_help_print_without_starting_a_server() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hailuo_mcp", "--version"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.decode().startswith("hailuo-mcp ")


def test_serve_over_streamable_http_answers_initialize(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HAILUO_DEMO": "1",
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hailuo_mcp", "serve", "--transport", "streamable-http"]
        + ["--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "http-test", "version": "1"},
        },
    }
    try:
        deadline = time.monotonic() + 20
        answer = None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/mcp",
                    json=initialize,
                    headers={"accept": "application/json, text/event-stream"},
                )
            except httpx.TransportError:
                time.sleep(0.05)  # not listening yet
        assert answer is not None and answer.status_code == 200
        # The SDK writes keys in alphabetical order: serverInfo's icons come before its name.
        assert '"serverInfo":{"icons":[' in answer.text and '"name":"hailuo-mcp"' in answer.text
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_demo_speed_zero_is_refused_with_a_usage_message_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hailuo_mcp", "demo", "--speed", "0"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    stderr = done.stderr.decode()
    assert "--speed: must be above 0" in stderr and "Traceback" not in stderr


def test_a_bad_setting_does_not_stop_the_server_from_answering(tmp_path: Path) -> None:
    # Before, the process exited before the handshake and the client saw "connection closed".
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HAILUO_WAIT_SECONDS": "abc",
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
    }
    initialize = (
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
        '"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "hailuo_mcp"],
        env=env,
        input=initialize.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b'"id":1' in done.stdout and b'"serverInfo"' in done.stdout
    assert "HAILUO_WAIT_SECONDS" in done.stderr.decode()
