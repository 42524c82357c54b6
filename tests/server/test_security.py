"""Secrets stay in the upstream requests; task ids can never place a file outside the output folder.

The whole flow runs with a recognisable API key and webhook secret: a success, an upstream
failure whose message echoes both, a 401 whose body echoes the key (once near the 300-character
cut of upstream messages), 5xx pages echoing them while polling, and a webhook configured so the
secret travels in `config.webhook_config` and comes back in every task object. Then every MCP
answer and progress message, every log record at DEBUG (with tracebacks), every exception
message, every byte under the state and output folders (the SQLite file and its -wal included)
and, for a real `python -m hailuo_mcp`, its whole stderr and stdout are searched for the secrets
and for any 12-character piece of them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from hailuo_mcp.config import Settings
from hailuo_mcp.downloads import VideoDownloader
from hailuo_mcp.emulator import Emulator, Fault
from hailuo_mcp.emulator.video import sample_video
from hailuo_mcp.errors import HailuoError, InputError
from hailuo_mcp.flow import VideoService
from hailuo_mcp.ledger import SqliteLedger
from hailuo_mcp.models import VideoRequest
from hailuo_mcp.piapi import PiAPIClient
from hailuo_mcp.server import build_server
from hailuo_mcp.tool_results import ERROR_META_KEY
from tests.reliability_stdio import server_env, stdio_server
from tests.support import MANUAL, MakeEmulator, error_of, make_settings

API_KEY = "sk-live-9c2e71f04b8d4a3eb6f5d0c1a7e93b52"
WEBHOOK_SECRET = "whsec-5f1d83c6a0e247b9be12d4f7c3a8906e"
WINDOW = 12

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.emulator(clock=1000, api_key=API_KEY, webhook_attempts=1, seed=13),
]


def pieces(secret: str) -> set[str]:
    """The secret and every 12-character piece of it: a cut-off echo is a leak too."""
    return {secret[i : i + WINDOW] for i in range(len(secret) - WINDOW + 1)}


NEEDLES = pieces(API_KEY) | pieces(WEBHOOK_SECRET)


def leaks(text: str) -> list[str]:
    return sorted(n for n in NEEDLES if n in text)


class Recorder:
    """A plain HTTP host on loopback that records requests: a webhook endpoint, a video host."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append((self.command, self.path, dict(self.headers), body))

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
                self._record()
                video = sample_video()
                self.send_response(200)
                self.send_header("content-type", "video/mp4")
                self.send_header("content-length", str(len(video)))
                self.end_headers()
                self.wfile.write(video)

            def do_POST(self) -> None:  # noqa: N802
                self._record()
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as rec:
        yield rec


def secret_env(recorder: Recorder) -> dict[str, str]:
    return {
        "PIAPI_API_KEY": API_KEY,
        "PIAPI_WEBHOOK_URL": f"{recorder.url}/hook",
        "PIAPI_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


def echoing_faults() -> list[tuple[str, Fault]]:
    """Upstream answers that echo the secrets back, keyed by the step that meets them."""
    padding = "request rejected; " * 16  # puts the key across the 300-character message cut
    return [
        (
            "401-json",
            Fault(
                "create",
                "status",
                status=401,
                body={"code": 401, "message": f"Invalid API key {API_KEY}"},
            ),
        ),
        ("401-cut", Fault("create", "status", status=401, body=f"{padding[:285]}{API_KEY}")),
        (
            "500-html",
            Fault(
                "get",
                "status",
                status=500,
                body=f"<html>x-api-key: {API_KEY}; secret {WEBHOOK_SECRET}</html>",
            ),
        ),
        (
            "403-get",
            Fault(
                "get",
                "status",
                status=403,
                body={"error": {"message": f"key {API_KEY} lacks the plan"}},
            ),
        ),
    ]


def files_text(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders for p in f.rglob("*") if p.is_file()}


def assert_no_secret_in_files(*folders: Path) -> int:
    contents = files_text(*folders)
    for name, data in contents.items():
        assert not leaks(data.decode("utf-8", "replace")), name
        assert not leaks(data.decode("utf-16-le", "replace")), name
    return len(contents)


def result_text(result: CallToolResult) -> str:
    return result.model_dump_json()


async def test_the_key_and_webhook_secret_appear_in_no_answer_log_file_or_error(
    make_emulator: MakeEmulator,
    emulator: Emulator,
    recorder: Recorder,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(emulator, tmp_path, **secret_env(recorder))
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(f"{progress} {total} {message}")

    faults = dict(echoing_faults())
    async with Client(build_server(settings)) as client:

        async def call(name: str, args: dict[str, Any]) -> CallToolResult:
            with anyio.fail_after(30):
                result = await client.call_tool(name, args, progress_callback=on_progress)
            seen.append(result_text(result))
            return result

        ok = await call("generate_video", {"prompt": "a lighthouse"})
        assert not ok.is_error
        task_id = (ok.structured_content or {})["task_id"]
        emulator.fail_next_tasks(1, message=f"bad key {API_KEY}", raw_message=WEBHOOK_SECRET)
        failed = await call("generate_video", {"prompt": "a storm"})
        assert error_of(failed)["error_kind"] == "task_failed"
        for step in ("401-json", "401-cut"):
            emulator.add_fault(faults[step])
            refused = await call("generate_video", {"prompt": "a key"})
            assert error_of(refused)["error_kind"] == "authentication"
        emulator.add_fault(faults["500-html"])
        retried = await call("generate_video", {"prompt": "a retry"})
        assert not retried.is_error
        emulator.add_fault(faults["403-get"])
        revoked = await call("generate_video", {"prompt": "a revoked plan"})
        assert error_of(revoked)["error_kind"] == "authentication"
        await call("get_task", {"task_id": task_id})
        await call("list_tasks", {"limit": 50})
        # While the server runs the ledger has its -wal beside it: scan that too.
        assert (settings.state_dir / "tasks.sqlite3-wal").exists()
        scanned_while_open = assert_no_secret_in_files(settings.state_dir, settings.output_dir)

    # The secrets were really used: upstream saw both, the webhook got the secret.
    echoed = emulator.task(task_id)["config"]["webhook_config"]
    assert echoed == {"endpoint": f"{recorder.url}/hook", "secret": WEBHOOK_SECRET}
    hooks = [r for r in recorder.requests if r[0] == "POST"]
    assert hooks and all(r[2].get("x-webhook-secret") == WEBHOOK_SECRET for r in hooks)

    errors = [await direct_error(make_emulator, settings, fault) for _, fault in echoing_faults()]
    texts = {
        "answers and progress": "\n".join(seen),
        "log": caplog.text,
        "log records": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "exceptions": "\n".join(f"{e!s} {e!r} {e.message}" for e in errors),
        "settings": f"{settings!r} {settings!s} {settings.model_dump_json()}",
    }
    for where, text in texts.items():
        assert not leaks(text), where
    assert scanned_while_open >= 3 and assert_no_secret_in_files(tmp_path) >= 3
    assert len(seen) > 20 and len(caplog.records) > 10  # there was plenty to scan


async def direct_error(
    make_emulator: MakeEmulator, settings: Settings, fault: Fault
) -> HailuoError:
    """The typed error PiAPIClient raises for one echoing fault, called without the server."""
    emu = make_emulator(clock=MANUAL, api_key=API_KEY, fixed_durations=None, seed=None)
    aimed = settings.model_copy(update={"base_url": emu.url})
    async with PiAPIClient(aimed) as client:
        task_id = None
        if fault.route == "get":
            task_id = (await client.create(VideoRequest(prompt="x"))).task_id
        emu.add_fault(fault)
        with pytest.raises(HailuoError) as caught:
            if task_id is None:
                await client.create(VideoRequest(prompt="x"))
            else:
                await client.get(task_id)
    return caught.value


async def test_a_real_server_process_prints_no_secret_on_stderr_or_stdout_at_debug(
    emulator: Emulator, recorder: Recorder, tmp_path: Path
) -> None:
    env = server_env(emulator, tmp_path, API_KEY, HAILUO_LOG_LEVEL="DEBUG")
    env.update(secret_env(recorder))
    faults = dict(echoing_faults())
    async with stdio_server(env) as server:
        with anyio.fail_after(60):
            ok = await server.call_tool("generate_video", {"prompt": "x"}, progress_token="p")
            assert not ok.get("isError")
            emulator.fail_next_tasks(1, message=f"bad key {API_KEY}", raw_message=WEBHOOK_SECRET)
            failed = await server.call_tool("generate_video", {"prompt": "y"})
            assert failed["_meta"][ERROR_META_KEY]["error_kind"] == "task_failed"
            for step in ("401-json", "401-cut"):
                emulator.add_fault(faults[step])
                refused = await server.call_tool("generate_video", {"prompt": "z"})
                assert refused["_meta"][ERROR_META_KEY]["error_kind"] == "authentication"
            emulator.add_fault(faults["500-html"])
            assert not (await server.call_tool("generate_video", {"prompt": "w"})).get("isError")
    stdout = "\n".join(json.dumps(m) for m in server.messages)
    stderr = server.stderr.decode("utf-8", "replace")
    assert server.not_protocol == []
    assert "DEBUG" in stderr and len(server.messages) > 5
    assert not leaks(stdout), "stdout"
    assert not leaks(stderr), "stderr"
    assert assert_no_secret_in_files(tmp_path / "state", tmp_path / "videos") >= 2


async def test_the_key_is_sent_to_piapi_only_never_to_the_video_host(
    emulator: Emulator, recorder: Recorder, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path, **secret_env(recorder))
    async with Client(build_server(settings)) as client:
        first = await client.call_tool("generate_video", {"prompt": "x", "wait_seconds": 0})
        task_id = (first.structured_content or {})["task_id"]
        # PiAPI answers with a video hosted elsewhere (and a hostile id, which is ignored).
        completed = {
            "task_id": "../../escape",
            "status": "completed",
            "output": {"video": f"{recorder.url}/ephemeral/out.mp4"},
        }
        emulator.add_fault(Fault("get", "malformed", body={"code": 200, "data": completed}))
        with anyio.fail_after(30):
            result = await client.call_tool("get_task", {"task_id": task_id})
    assert not result.is_error, result
    saved = Path((result.structured_content or {})["video_path"])
    assert saved.parent == settings.output_dir and saved.name.endswith(f"-{task_id[:6]}.mp4")
    assert saved.read_bytes() == sample_video()
    (download,) = [r for r in recorder.requests if r[0] == "GET"]
    assert "x-api-key" not in {h.lower() for h in download[2]}
    assert not leaks(json.dumps(download[2]))


HOSTILE_IDS = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\x",
    "abc/../../x",
    "abc\x00def",
    "abc\n",
    "..",
    ".hidden",
    "-rf",
    "",
    " ",
    "a" * 129,
    "ａｂｃ",  # fullwidth letters
    "abc def",
    "abc;rm -rf ~",
    "file:///etc/passwd",
]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("task_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
async def test_a_hostile_task_id_is_refused_before_any_request_or_path(
    emulator: Emulator, tmp_path: Path, task_id: str
) -> None:
    settings = make_settings(emulator, tmp_path)
    async with Client(build_server(settings)) as client:
        await client.call_tool("list_tasks", {})  # the ledger exists: a baseline tree
        before = tree(tmp_path)
        result = await client.call_tool("get_task", {"task_id": task_id, "wait_seconds": 0})
    assert result.is_error
    assert "task_id" in " ".join(b.text for b in result.content if isinstance(b, TextContent))
    assert emulator.gets() == 0
    assert tree(tmp_path) - before <= {"state/tasks.sqlite3-wal", "state/tasks.sqlite3-shm"}
    # Below the tool's schema, the service and the client refuse it again (two more guards).
    async with (
        PiAPIClient(settings) as piapi,
        VideoDownloader(settings) as downloader,
        SqliteLedger(settings.ledger_path) as ledger,
    ):
        with pytest.raises(InputError, match="task_id"):
            await VideoService(settings, client=piapi, ledger=ledger, downloader=downloader).lookup(
                task_id
            )
        with pytest.raises(InputError, match="task_id"):
            await piapi.get(task_id)
    assert emulator.gets() == 0


async def test_a_hostile_task_id_from_upstream_is_rejected_before_any_path_is_built(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path)
    hostile = {"task_id": "../../../escape", "status": "pending"}
    emulator.add_fault(Fault("create", "malformed", body={"code": 200, "data": hostile}))
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("generate_video", {"prompt": "x"})
        listed = await client.call_tool("list_tasks", {})
    assert error_of(result)["error_kind"] == "ambiguous_create"
    assert "no usable task id" in " ".join(
        b.text for b in result.content if isinstance(b, TextContent)
    )
    assert (listed.structured_content or {})["count"] == 0
    assert not settings.output_dir.exists() or list(settings.output_dir.iterdir()) == []
    assert not any("escape" in p for p in tree(tmp_path))
    assert list(tmp_path.parent.glob("*escape*")) == []
    assert emulator.creates() == 1
