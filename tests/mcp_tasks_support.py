"""Raw JSON-RPC for the MCP Tasks tests: one session API over stdio and streamable HTTP.

Messages are built from the specs' schemas by hand (no SDK client: it knows no tasks), and
answers are checked against the JSON schemas in tests/data/mcp_tasks (see its README).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO, Any

import httpx
from jsonschema import Draft202012Validator

from hailuo_mcp.emulator import Emulator
from tests.support import KEY

EXT = "io.modelcontextprotocol/tasks"
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
ERAS = [LEGACY, MODERN]
DATA = Path(__file__).parent / "data" / "mcp_tasks"
SCHEMAS = {
    LEGACY: DATA / "mcp-2025-11-25.schema.json",
    MODERN: DATA / "mcp-2026-07-28.schema.json",
    EXT: DATA / "ext-tasks-draft.schema.json",
}
ACCEPT = "application/json, text/event-stream"
TIMEOUT_S = 30.0


@cache
def _validator(schema: str, name: str) -> Draft202012Validator:
    document = json.loads(SCHEMAS[schema].read_text())
    return Draft202012Validator({**document, "$ref": f"#/$defs/{name}"})


def check(schema: str, name: str, instance: Any) -> None:
    """Fail unless `instance` is valid against `$defs/name` of one of the specs' schemas."""
    _validator(schema, name).validate(instance)


def server_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A server aimed at `emulator`, its state and videos under `tmp_path`."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PIAPI_API_KEY": KEY,
        "PIAPI_BASE_URL": emulator.url,
        "PIAPI_UPLOAD_URL": emulator.upload_url,
        "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
        "HAILUO_IMAGE_DIRS": str(tmp_path),
        "HAILUO_WAIT_SECONDS": "30",
        "HAILUO_EXPECTED_SECONDS": "0.77",
        "HAILUO_LOG_LEVEL": "INFO",
        **extra,
    }


class StdioWire:
    """`python -m hailuo_mcp` as a subprocess: one JSON-RPC message per line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hailuo_mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._lines: queue.Queue[bytes] = queue.Queue()
        self.stderr: list[bytes] = []
        self.notifications: list[dict[str, Any]] = []
        self._readers = [
            threading.Thread(target=_pump, args=(self.process.stdout, self._lines.put)),
            threading.Thread(target=_pump, args=(self.process.stderr, self.stderr.append)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    def send(self, message: dict[str, Any], headers: dict[str, str]) -> dict[str, Any] | None:
        """Write one message; wait for the answer to a request (headers are HTTP's only)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()
        if "id" not in message:
            return None
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            answer = json.loads(line)  # every stdout line is one JSON message
            if answer.get("id") == message["id"] and "method" not in answer:
                return dict(answer)
            if "method" in answer and "id" not in answer:
                self.notifications.append(answer)

    def drain(self) -> None:
        """Collect the notifications that arrived without an answer to wait for."""
        while True:
            try:
                answer = json.loads(self._lines.get_nowait())
            except queue.Empty:
                return
            if "method" in answer and "id" not in answer:
                self.notifications.append(answer)

    def close(self) -> None:
        """End the server as a client does: close its stdin, then wait."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=5)
            for reader in self._readers:
                reader.join(timeout=5)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


def _pump(stream: IO[bytes], put: Callable[[bytes], None]) -> None:
    for line in iter(stream.readline, b""):
        put(line)


class HttpWire:
    """Streamable HTTP at `url`/mcp: JSON or one SSE event per answer."""

    def __init__(self, url: str) -> None:
        self._url = f"{url}/mcp"
        self._http = httpx.Client(timeout=TIMEOUT_S, trust_env=False)
        self.session_id: str | None = None
        self.notifications: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], headers: dict[str, str]) -> dict[str, Any] | None:
        """POST one message; the answer to a request, read from JSON or SSE."""
        sent = {"accept": ACCEPT, "content-type": "application/json", **headers}
        if self.session_id is not None:
            sent["mcp-session-id"] = self.session_id
        response = self._http.post(self._url, json=message, headers=sent)
        if "mcp-session-id" in response.headers:
            self.session_id = response.headers["mcp-session-id"]
        if "id" not in message:
            assert response.status_code in (200, 202), response.text
            return None
        answers = _messages(response)
        for answer in answers:
            if "method" in answer and "id" not in answer:
                self.notifications.append(answer)
        (reply,) = [a for a in answers if a.get("id") == message["id"]]
        return reply

    def drain(self) -> None:
        """Nothing to collect: over HTTP notifications ride the answers' streams."""

    def close(self) -> None:
        """Close the HTTP client (the server is stopped by its owner)."""
        self._http.close()


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [
            json.loads(line[len("data:") :])
            for line in response.text.splitlines()
            if line.startswith("data:") and line[len("data:") :].strip()
        ]
    return [response.json()]


Wire = StdioWire | HttpWire


class Session:
    """A client of one era over one wire: the handshake (2025) or per-request envelopes (2026)."""

    def __init__(self, wire: Wire, era: str, *, declare: bool = True) -> None:
        self.wire = wire
        self.era = era
        self.declare = declare
        self._ids = itertools.count(1)
        if era == LEGACY:
            answer = self.request(
                "initialize",
                {
                    "protocolVersion": LEGACY,
                    "capabilities": {},
                    "clientInfo": {"name": "mcp-tasks-test", "version": "1"},
                },
            )
            self.capabilities = answer["result"]["capabilities"]
            self.wire.send({"jsonrpc": "2.0", "method": "notifications/initialized"}, {})
        else:
            self.capabilities = self.result("server/discover")["capabilities"]

    def envelope(self) -> dict[str, Any]:
        """The 2026-07-28 per-request `_meta`: version, client info, capabilities."""
        capabilities: dict[str, Any] = {"extensions": {EXT: {}}} if self.declare else {}
        return {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "mcp-tasks-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": capabilities,
        }

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request; the whole JSON-RPC answer (result or error)."""
        sent: dict[str, Any] = dict(params or {})
        headers: dict[str, str] = {}
        if self.era == MODERN:
            sent["_meta"] = {**sent.get("_meta", {}), **self.envelope()}
            headers = {"mcp-protocol-version": MODERN, "mcp-method": method}
            name = sent.get("taskId") or sent.get("name")
            if isinstance(name, str):
                headers["mcp-name"] = name  # the extension's routing header for tasks/*
        elif isinstance(self.wire, HttpWire) and method != "initialize":
            headers = {"mcp-protocol-version": LEGACY}
        message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": sent}
        answer = self.wire.send(message, headers)
        assert answer is not None
        return answer

    def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The result of one request, which must not be an error."""
        answer = self.request(method, params)
        assert "error" not in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    def error(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON-RPC error of one request, which must fail."""
        answer = self.request(method, params)
        assert "error" in answer, answer
        error: dict[str, Any] = answer["error"]
        return error

    def call(
        self, name: str, arguments: dict[str, Any], *, ttl: int | None = None
    ) -> dict[str, Any]:
        """tools/call, task-augmented on 2025-11-25 (the `task` field), the whole answer."""
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if self.era == LEGACY:
            params["task"] = {} if ttl is None else {"ttl": ttl}
        return self.request("tools/call", params)

    def created(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The task of a CreateTaskResult, checked against this era's schema."""
        assert "result" in answer, answer
        result = answer["result"]
        if self.era == LEGACY:
            check(LEGACY, "CreateTaskResult", result)
            task: dict[str, Any] = result["task"]
            return task
        check(EXT, "CreateTaskResult", result)
        assert result["resultType"] == "task"
        return dict(result)

    def get(self, task_id: str) -> dict[str, Any]:
        """tasks/get, checked against this era's schema."""
        result = self.result("tasks/get", {"taskId": task_id})
        check(LEGACY if self.era == LEGACY else EXT, "GetTaskResult", result)
        if self.era == MODERN:
            assert result["resultType"] == "complete"
        return result

    def until_ended(self, task_id: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """Poll tasks/get (at the server's pollInterval, capped) until the task ended."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.get(task_id)
            if task["status"] not in ("working", "input_required"):
                return task
            assert time.monotonic() < deadline, f"task still {task['status']}: {task}"
            hint = task.get("pollIntervalMs" if self.era == MODERN else "pollInterval") or 50
            time.sleep(min(hint, 200) / 1000)

    def close(self) -> None:
        """Close the wire."""
        self.wire.close()


@contextmanager
def stdio_session(env: dict[str, str], era: str, *, declare: bool = True) -> Iterator[Session]:
    """A session with a fresh server process, closed at the end of the block."""
    session = Session(StdioWire(env), era, declare=declare)
    try:
        yield session
    finally:
        session.close()


def wait_for(predicate: Callable[[], object], timeout: float = TIMEOUT_S) -> None:
    """Block until `predicate()` is true (polled every 20 ms), or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
