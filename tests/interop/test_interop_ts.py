"""The official TypeScript SDK client (what Claude Desktop, Cursor and VS Code are built on).

Each test runs `tests/interop/client.mjs` against the real server process, over stdio (the
client starts the server) and over streamable HTTP (the test starts it). The client lists the
tools first, so it validates structuredContent against each outputSchema exactly as hosts do,
and raises MCP error -32602 instead of returning a result that breaks it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from hailuo_mcp.emulator import Emulator
from hailuo_mcp.emulator.faults import Fault
from tests.interop_support import (
    assert_error_result,
    check_structured,
    held_ts_client,
    http_server,
    ledger_row,
    returned_result,
    server_env,
    stdio_transport,
    text_of,
    tool,
    ts_client,
    wait_until,
)
from tests.support import MakeEmulator

pytestmark = pytest.mark.emulator(clock=100, seed=3, fixed_durations=None)

Connect = Callable[[Mapping[str, str]], dict[str, Any]]

# The SDK's McpError code when its own request timeout fires (it then sends
# notifications/cancelled).
REQUEST_TIMEOUT = -32001


@pytest.fixture(params=["stdio", "http"])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connect]:
    """Turns a server environment into the driver's transport spec, starting the HTTP server."""
    with ExitStack() as stack:

        def make(env: Mapping[str, str]) -> dict[str, Any]:
            if request.param == "stdio":
                return stdio_transport(env)
            log = tmp_path / "http-server.log"
            return {"type": "http", "url": stack.enter_context(http_server(env, log))}

        yield make


def call(transport: dict[str, Any], name: str, arguments: dict[str, Any], **options: Any) -> Any:
    """One tools/call through the TS client; its printed answer."""
    return ts_client({"transport": transport, "tool": name, "arguments": arguments, **options})


def test_generate_video_reports_rising_progress_and_names_the_saved_file(
    emulator: Emulator, tmp_path: Path, connect: Connect
) -> None:
    answer = call(connect(server_env(emulator, tmp_path)), "generate_video", {"prompt": "a fox"})

    result = returned_result(answer)
    assert result.get("isError") is not True, result
    structured = result["structuredContent"]
    assert structured["status"] == "completed" and structured["done"] is True
    video = Path(structured["video_path"])
    assert video.is_file() and video.parent == tmp_path / "videos"
    assert structured["task_id"] == emulator.task_ids()[0]
    assert video.name in text_of(result) and structured["task_id"] in text_of(result)
    check_structured(result, tool(answer, "generate_video")["outputSchema"])
    values = [p["progress"] for p in answer["progress"]]
    assert len(values) >= 2, answer["progress"]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values


def test_the_resource_link_of_a_saved_video_reads_back_as_an_mp4_blob(
    emulator: Emulator, tmp_path: Path, connect: Connect
) -> None:
    answer = call(
        connect(server_env(emulator, tmp_path)),
        "generate_video",
        {"prompt": "a fox"},
        readResource="link",
    )

    result = returned_result(answer)
    video = Path(result["structuredContent"]["video_path"])
    link = next(block for block in result["content"] if block["type"] == "resource_link")
    assert link["mimeType"] == "video/mp4"
    read = answer["resources"]
    assert "readError" not in read, f"resources/read of {link['uri']}: {read['readError']}"
    (content,) = read["read"]["contents"]
    assert content["uri"] == link["uri"] and content["mimeType"] == "video/mp4"
    assert content["blobBytes"] == video.stat().st_size
    assert content["blobSha256"] == hashlib.sha256(video.read_bytes()).hexdigest()


def test_a_missing_api_key_is_a_configuration_result_naming_piapi_api_key(
    tmp_path: Path, connect: Connect
) -> None:
    answer = call(connect(server_env(None, tmp_path)), "generate_video", {"prompt": "a fox"})

    text = assert_error_result(answer, "generate_video", "configuration")
    assert "PIAPI_API_KEY" in text


def test_duration_10_at_1080p_is_an_invalid_input_result(
    emulator: Emulator, tmp_path: Path, connect: Connect
) -> None:
    answer = call(
        connect(server_env(emulator, tmp_path)),
        "generate_video",
        {"prompt": "a fox", "duration": 10, "resolution": 1080},
    )

    assert_error_result(answer, "generate_video", "invalid_input")
    assert emulator.creates() == 0


LONG_PROMPT = ("a lighthouse keeper paints the storm " * 60)[:2001]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"prompt": "a fox", "duration": 7}, "duration"),
        ({"prompt": LONG_PROMPT}, "prompt"),
    ],
    ids=["duration-7", "prompt-2001-chars"],
)
def test_arguments_the_schema_rejects_are_invalid_input_results_naming_the_field(
    emulator: Emulator,
    tmp_path: Path,
    connect: Connect,
    arguments: dict[str, Any],
    field: str,
) -> None:
    answer = call(connect(server_env(emulator, tmp_path)), "generate_video", arguments)

    text = assert_error_result(answer, "generate_video", "invalid_input")
    assert field in text
    assert "pydantic" not in text and "validation error for" not in text, text
    assert LONG_PROMPT[:40] not in text
    assert emulator.creates() == 0


def test_a_path_like_task_id_is_an_invalid_input_result_stating_the_rule(
    emulator: Emulator, tmp_path: Path, connect: Connect
) -> None:
    answer = call(
        connect(server_env(emulator, tmp_path)), "get_task", {"task_id": "../../etc/passwd"}
    )

    text = assert_error_result(answer, "get_task", "invalid_input")
    assert "task_id" in text and "at most 128 characters" in text, text
    assert "[A-Za-z0-9]" not in text  # the rule in words, not the schema's regex
    assert emulator.gets() == 0


def test_an_unknown_task_id_is_a_task_not_found_result(
    emulator: Emulator, tmp_path: Path, connect: Connect
) -> None:
    unknown = "0f0e0d0c-0000-4000-8000-000000000000"
    answer = call(connect(server_env(emulator, tmp_path)), "get_task", {"task_id": unknown})

    assert_error_result(answer, "get_task", "task_not_found", task_id=unknown)


def test_a_402_on_create_is_an_insufficient_credits_result(
    emulator: Emulator, tmp_path: Path, connect: Connect
) -> None:
    emulator.add_fault(Fault(route="create", kind="status", status=402))
    answer = call(connect(server_env(emulator, tmp_path)), "generate_video", {"prompt": "a fox"})

    assert_error_result(answer, "generate_video", "insufficient_credits")


def test_a_task_that_fails_upstream_is_a_task_failed_result_with_its_task_id(
    emulator: Emulator, tmp_path: Path, connect: Connect
) -> None:
    emulator.fail_next_tasks(1)
    answer = call(connect(server_env(emulator, tmp_path)), "generate_video", {"prompt": "a fox"})

    (task_id,) = emulator.task_ids()
    assert_error_result(answer, "generate_video", "task_failed", task_id=task_id)


def test_an_unreadable_hailuo_wait_seconds_leaves_the_server_answering_with_a_configuration_result(
    emulator: Emulator, tmp_path: Path, connect: Connect
) -> None:
    env = server_env(emulator, tmp_path, HAILUO_WAIT_SECONDS="abc")
    answer = call(connect(env), "generate_video", {"prompt": "a fox"})

    text = assert_error_result(answer, "generate_video", "configuration")
    assert "HAILUO_WAIT_SECONDS" in text
    assert emulator.creates() == 0


# A poll that hangs longer than the client's timeout: only progress can keep the call alive.
HANG_S = 8.0
CLIENT_TIMEOUT_MS = 6000
MAX_GAP_S = 5.0


def test_progress_keeps_a_6_s_client_timeout_alive_while_a_poll_hangs(
    emulator: Emulator, tmp_path: Path, connect: Connect
) -> None:
    emulator.add_fault(Fault(route="get", kind="hang", delay=HANG_S))
    answer = call(
        connect(server_env(emulator, tmp_path)),
        "generate_video",
        {"prompt": "a fox"},
        timeoutMs=CLIENT_TIMEOUT_MS,
        resetTimeoutOnProgress=True,
    )

    result = returned_result(answer)
    assert result.get("isError") is not True, result
    assert answer["elapsedMs"] / 1000 > HANG_S  # the hang really was in the way
    moments = [0.0, *(p["t"] for p in answer["progress"]), answer["elapsedMs"] / 1000]
    gaps = [b - a for a, b in zip(moments, moments[1:], strict=False)]
    assert max(gaps) <= MAX_GAP_S, f"progress stalled for {max(gaps):.1f} s: {answer['progress']}"


def test_a_client_that_gives_up_still_gets_its_video_saved_and_the_ledger_row_completed(
    make_emulator: MakeEmulator, tmp_path: Path, connect: Connect
) -> None:
    # 1 s queued + 99 s generating at speed 20: the task ends ~5 s after the create, after the
    # client's 3 s timeout has fired and it has sent notifications/cancelled.
    emulator = make_emulator(clock=20, fixed_durations=(1.0, 99.0), seed=3)
    env = server_env(emulator, tmp_path, HAILUO_EXPECTED_SECONDS="5")
    request = {
        "transport": connect(env),
        "tool": "generate_video",
        "arguments": {"prompt": "a fox"},
        "timeoutMs": 3000,
        "resetTimeoutOnProgress": False,
    }
    with held_ts_client(request) as answer:
        assert answer.get("error", {}).get("code") == REQUEST_TIMEOUT, answer
        (task_id,) = emulator.task_ids()

        def row() -> dict[str, Any] | None:
            return ledger_row(tmp_path / "state", task_id)

        def saved() -> bool:
            found = row()
            return (
                found is not None
                and found["status"] == "completed"
                and found["video_path"] is not None
                and Path(found["video_path"]).is_file()
            )

        wait_until(saved, 20, f"task {task_id} saved and completed in the ledger", row)
    final = ledger_row(tmp_path / "state", task_id)
    assert final is not None
    saved_names = [v.name for v in (tmp_path / "videos").glob("*.mp4")]
    assert saved_names == [Path(final["video_path"]).name]


def test_the_ts_client_calls_a_token_protected_http_server_with_its_bearer_token(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = server_env(emulator, tmp_path, HAILUO_HTTP_TOKEN="interop-token-0123456789")
    with http_server(env, tmp_path / "http-server.log") as url:
        transport = {"type": "http", "url": url, "token": "interop-token-0123456789"}
        answer = call(transport, "estimate_cost", {"duration": 10})

    result = returned_result(answer)
    assert result.get("isError") is not True, result
    check_structured(result, tool(answer, "estimate_cost")["outputSchema"])
