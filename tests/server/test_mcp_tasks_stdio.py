"""MCP Tasks over stdio, both eras: a real `python -m hailuo_mcp` and raw JSON-RPC lines.

2026-07-28 clients (Claude Code) declare `io.modelcontextprotocol/tasks` on each request;
2025-11-25 clients (VS Code, the Copilot CLI) send `task` on tools/call. Either way
generate_video answers at once with a task; the paid Hailuo task is followed in the
background, its video saved, and the task reports the tool's own result.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from hailuo_mcp.emulator import Emulator
from hailuo_mcp.ledger import open_ledger_sync
from tests.mcp_tasks_support import (
    ERAS,
    EXT,
    LEGACY,
    MODERN,
    Session,
    check,
    server_env,
    stdio_session,
    wait_for,
)


def ledger(tmp_path: Path) -> closing[sqlite3.Connection]:
    """The server's ledger file, read (and aged) from outside as a test does."""
    return open_ledger_sync(tmp_path / "state" / "tasks.sqlite3")


def video_row(tmp_path: Path, task_id: str) -> dict[str, Any]:
    with ledger(tmp_path) as conn:
        row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return dict(row)


def tool_result(session: Session, task: dict[str, Any]) -> dict[str, Any]:
    """The tool result an ended task carries (2026) or tasks/result returns (2025)."""
    if session.era == MODERN:
        result: dict[str, Any] = task["result"]
        check(MODERN, "CallToolResult", result)
        return result
    answer = session.result("tasks/result", {"taskId": task["taskId"]})
    check(LEGACY, "CallToolResult", answer)
    assert answer["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task["taskId"]}
    return answer


@pytest.mark.parametrize("era", ERAS)
def test_generate_video_is_a_task_working_then_completed_with_the_saved_video(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    # The emulator's clock is frozen: the answer came while the Hailuo task could not end.
    with stdio_session(server_env(emulator, tmp_path), era) as session:
        if era == LEGACY:
            assert session.capabilities["tasks"]["requests"] == {"tools": {"call": {}}}
            tools = {t["name"]: t for t in session.result("tools/list")["tools"]}
            for name, tool in tools.items():
                check(LEGACY, "Tool", tool)
                supported = name in ("generate_video", "get_task")
                assert tool.get("execution") == ({"taskSupport": "optional"} if supported else None)
        else:
            assert session.capabilities["extensions"][EXT] == {}
        task = session.created(session.call("generate_video", {"prompt": "autumn wind"}))
        assert task["status"] == "working"
        hailuo_id = emulator.task_ids()[0]
        assert hailuo_id in task["statusMessage"]
        assert len(task["taskId"]) >= 32 and hailuo_id not in task["taskId"]
        # Durable before the answer: the ledger already has it.
        with ledger(tmp_path) as conn:
            row = conn.execute(
                "SELECT task_id FROM protocol_tasks WHERE id = ?", (task["taskId"],)
            ).fetchone()
        assert tuple(row) == (hailuo_id,)
        working = session.get(task["taskId"])
        assert working["status"] == "working"
        assert (working.get("pollIntervalMs") or working.get("pollInterval") or 0) > 0
        if era == MODERN:
            # Nothing to answer (these tasks never ask for input): acknowledged all the same.
            update = session.result(
                "tasks/update", {"taskId": task["taskId"], "inputResponses": {}}
            )
            check(EXT, "UpdateTaskResult", update)

        emulator.advance(80)
        ended = session.until_ended(task["taskId"])
        assert ended["status"] == "completed"
        result = tool_result(session, ended)
        assert result["isError"] is False
        video = Path(result["structuredContent"]["video_path"])
        assert video.is_file() and video.read_bytes()[4:8] == b"ftyp"
        assert str(video) in ended["statusMessage"]
        assert any(block["type"] == "resource_link" for block in result["content"])
        assert emulator.creates() == 1
        if era == LEGACY:

            def told_status() -> list[dict[str, Any]]:
                session.wire.drain()
                return [
                    n
                    for n in session.wire.notifications
                    if n["method"] == "notifications/tasks/status"
                ]

            wait_for(told_status, timeout=5)
            told = told_status()
            assert told and told[-1]["params"]["status"] == "completed"
            for notification in told:
                check(LEGACY, "TaskStatusNotification", notification)
            listed = session.result("tasks/list")
            check(LEGACY, "ListTasksResult", listed)
            assert [t["taskId"] for t in listed["tasks"]] == [task["taskId"]]


@pytest.mark.parametrize("era", ERAS)
def test_bad_input_is_an_immediate_error_and_makes_no_task(
    fast_emulator: Emulator, tmp_path: Path, era: str
) -> None:
    with stdio_session(server_env(fast_emulator, tmp_path), era) as session:
        for arguments in ({"prompt": ""}, {"prompt": "fox", "duration": 7}):
            answer = session.call("generate_video", arguments)
            if era == MODERN:
                result = answer["result"]
                assert result["resultType"] == "complete" and result["isError"] is True
                assert "taskId" not in result
            else:
                assert answer["error"]["code"] == -32602
                assert "invalid_input" in answer["error"]["message"]
        with ledger(tmp_path) as conn:
            assert tuple(conn.execute("SELECT count(*) FROM protocol_tasks").fetchone()) == (0,)
    assert fast_emulator.creates() == 0


@pytest.mark.parametrize("era", ERAS)
def test_a_server_restarted_between_create_and_completion_answers_and_finishes_the_task(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    env = server_env(emulator, tmp_path)  # the emulator's clock is frozen: nothing ends alone
    with stdio_session(env, era) as first:
        task = first.created(first.call("generate_video", {"prompt": "a lighthouse at dusk"}))
        assert first.get(task["taskId"])["status"] == "working"
    emulator.advance(80)  # the task completes while no server runs
    with stdio_session(env, era) as second:
        ended = second.until_ended(task["taskId"])
        assert ended["status"] == "completed"
        video = Path(tool_result(second, ended)["structuredContent"]["video_path"])
        assert video.is_file()
    assert emulator.creates() == 1


@pytest.mark.parametrize("era", ERAS)
def test_cancel_ends_the_task_but_the_paid_video_is_still_followed_and_saved(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    with stdio_session(server_env(emulator, tmp_path), era) as session:
        task = session.created(session.call("generate_video", {"prompt": "rain on a window"}))
        answer = session.result("tasks/cancel", {"taskId": task["taskId"]})
        if era == MODERN:
            check(EXT, "CancelTaskResult", answer)
            assert answer["resultType"] == "complete"
        else:
            check(LEGACY, "CancelTaskResult", answer)
            assert answer["status"] == "cancelled"
        cancelled = session.get(task["taskId"])
        assert cancelled["status"] == "cancelled"
        assert "still follows it and saves its video" in cancelled["statusMessage"]
        hailuo_id = emulator.task_ids()[0]
        with ledger(tmp_path) as conn:
            status, message = conn.execute(
                "SELECT status, status_message FROM protocol_tasks WHERE id = ?", (task["taskId"],)
            ).fetchone()
        assert status == "cancelled" and hailuo_id in message

        emulator.advance(80)  # Hailuo finishes (and charges) all the same
        wait_for(lambda: video_row(tmp_path, hailuo_id)["video_path"] is not None)
        assert Path(video_row(tmp_path, hailuo_id)["video_path"]).is_file()
        after = session.get(task["taskId"])
        assert after["status"] == "cancelled"  # a cancelled task stays cancelled
        assert video_row(tmp_path, hailuo_id)["video_path"] in after["statusMessage"]
        again = session.request("tasks/cancel", {"taskId": task["taskId"]})
        if era == MODERN:
            assert again["result"]["resultType"] == "complete"  # cooperative: acknowledged
        else:
            assert again["error"]["code"] == -32602  # terminal: refused
            assert "cancelled" in again["error"]["message"]
            result = session.result("tasks/result", {"taskId": task["taskId"]})
            assert (
                result["structuredContent"]["video_path"]
                == video_row(tmp_path, hailuo_id)["video_path"]
            )
    assert emulator.creates() == 1


@pytest.mark.parametrize("era", ERAS)
def test_an_unknown_task_id_is_invalid_params_for_every_task_method(
    fast_emulator: Emulator, tmp_path: Path, era: str
) -> None:
    methods = ["tasks/get", "tasks/cancel"]
    methods += ["tasks/result"] if era == LEGACY else ["tasks/update"]
    with stdio_session(server_env(fast_emulator, tmp_path), era) as session:
        for method in methods:
            params: dict[str, Any] = {"taskId": "no-such-task"}
            if method == "tasks/update":
                params["inputResponses"] = {}
            error = session.error(method, params)
            assert error["code"] == -32602, (method, error)
            assert "not found" in error["message"]


@pytest.mark.parametrize("era", ERAS)
def test_a_task_past_its_ttl_has_expired_while_its_video_is_still_saved(
    fast_emulator: Emulator, tmp_path: Path, era: str
) -> None:
    with stdio_session(server_env(fast_emulator, tmp_path), era) as session:
        answer = session.call("generate_video", {"prompt": "snow falling"}, ttl=1000)
        task = session.created(answer)
        if era == LEGACY:
            assert task["ttl"] == 1000  # the client's ttl, granted
        else:
            assert task["ttlMs"] == 24 * 3600 * 1000
            # A day is long for a test: age the task instead.
            with ledger(tmp_path) as conn:
                conn.execute(
                    "UPDATE protocol_tasks SET created_at = created_at - 86401 WHERE id = ?",
                    (task["taskId"],),
                )
                conn.commit()
        time.sleep(1.1)
        error = session.error("tasks/get", {"taskId": task["taskId"]})
        assert error["code"] == -32602 and "expired" in error["message"]
        hailuo_id = fast_emulator.task_ids()[0]
        wait_for(lambda: video_row(tmp_path, hailuo_id)["video_path"] is not None)
        if era == LEGACY:
            assert session.result("tasks/list")["tasks"] == []


@pytest.mark.parametrize("era", ERAS)
def test_a_generation_that_fails_upstream_is_a_tool_error_result_of_the_task(
    fast_emulator: Emulator, tmp_path: Path, era: str
) -> None:
    fast_emulator.fail_next_tasks(1, message="content policy")
    with stdio_session(server_env(fast_emulator, tmp_path), era) as session:
        task = session.created(session.call("generate_video", {"prompt": "storm"}))
        ended = session.until_ended(task["taskId"])
        # A tool result with isError: `completed` in the extension, `failed` in 2025-11-25.
        assert ended["status"] == ("completed" if era == MODERN else "failed")
        assert "content policy" in ended["statusMessage"]
        result = tool_result(session, ended)
        assert result["isError"] is True
        assert result["_meta"]["io.github.hailuo-mcp/error"]["error_kind"] == "task_failed"
        assert "error" not in ended  # `error` is for JSON-RPC errors only
    assert fast_emulator.creates() == 1


def test_a_2026_client_without_the_extension_gets_todays_answer_and_no_task_methods(
    fast_emulator: Emulator, tmp_path: Path
) -> None:
    with stdio_session(server_env(fast_emulator, tmp_path), MODERN, declare=False) as session:
        result = session.result(
            "tools/call", {"name": "generate_video", "arguments": {"prompt": "owl"}}
        )
        assert result["resultType"] == "complete" and result["isError"] is False
        assert Path(result["structuredContent"]["video_path"]).is_file()
        error = session.error("tasks/get", {"taskId": "anything"})
        assert error["code"] == -32021
        assert error["data"]["requiredCapabilities"]["extensions"] == {EXT: {}}
        with ledger(tmp_path) as conn:
            assert tuple(conn.execute("SELECT count(*) FROM protocol_tasks").fetchone()) == (0,)


def test_a_2025_client_that_sends_no_task_field_gets_todays_answer(
    fast_emulator: Emulator, tmp_path: Path
) -> None:
    with stdio_session(server_env(fast_emulator, tmp_path), LEGACY) as session:
        result = session.result(
            "tools/call", {"name": "generate_video", "arguments": {"prompt": "owl"}}
        )
        assert "task" not in result and result["isError"] is False
        assert Path(result["structuredContent"]["video_path"]).is_file()
        assert session.result("tasks/list")["tasks"] == []


def test_get_task_with_a_wait_is_a_task_and_without_one_a_plain_answer(
    emulator: Emulator, tmp_path: Path
) -> None:
    with stdio_session(server_env(emulator, tmp_path), MODERN) as session:
        session.created(session.call("generate_video", {"prompt": "x"}))
        hailuo_id = emulator.task_ids()[0]
        looked = session.result(
            "tools/call", {"name": "get_task", "arguments": {"task_id": hailuo_id}}
        )
        assert looked["resultType"] == "complete" and looked["structuredContent"]["done"] is False
        task = session.created(session.call("get_task", {"task_id": hailuo_id, "wait_seconds": 60}))
        emulator.advance(80)
        ended = session.until_ended(task["taskId"])
        assert ended["status"] == "completed"
        assert ended["result"]["structuredContent"]["task_id"] == hailuo_id
    assert emulator.creates() == 1


def test_the_2025_only_and_2026_only_methods_stay_in_their_era(
    fast_emulator: Emulator, tmp_path: Path
) -> None:
    with stdio_session(server_env(fast_emulator, tmp_path), MODERN) as modern:
        assert modern.error("tasks/result", {"taskId": "x"})["code"] == -32601
        assert modern.error("tasks/list")["code"] == -32601
    with stdio_session(server_env(fast_emulator, tmp_path), LEGACY) as legacy:
        assert legacy.error("tasks/update", {"taskId": "x", "inputResponses": {}})["code"] == -32601
        assert legacy.error("tasks/list", {"cursor": "not-ours"})["code"] == -32602
        # A tool without taskSupport refuses to run as a task.
        refused = legacy.call("estimate_cost", {})
        assert refused["error"]["code"] == -32601
