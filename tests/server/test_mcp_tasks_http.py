"""MCP Tasks over streamable HTTP, both eras: the real HTTP app on loopback, raw JSON-RPC POSTs.

The same stories as over stdio, where HTTP differs: 2025-11-25 runs in a session
(`mcp-session-id`), 2026-07-28 sends every request on its own with the routing headers
(`Mcp-Method`, and `Mcp-Name` set to the task id for tasks/*).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hailuo_mcp.emulator import Emulator
from hailuo_mcp.http_app import build_http_app
from hailuo_mcp.server import build_server
from tests.mcp_tasks_support import ERAS, LEGACY, MODERN, HttpWire, Session, check, wait_for
from tests.servers import serving
from tests.support import make_settings


@contextmanager
def http_session(emulator: Emulator, tmp_path: Path, era: str) -> Iterator[Session]:
    """The hailuo-mcp HTTP app on a loopback port, and a client session of `era`."""
    settings = make_settings(emulator, tmp_path, HAILUO_EXPECTED_SECONDS="0.77")
    with serving(build_http_app(build_server(settings), settings, "127.0.0.1", 0)) as url:
        session = Session(HttpWire(url), era)
        try:
            yield session
        finally:
            session.close()


@pytest.mark.parametrize("era", ERAS)
def test_over_http_a_generation_is_a_task_that_completes_with_the_saved_video(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    with http_session(emulator, tmp_path, era) as session:
        task = session.created(session.call("generate_video", {"prompt": "autumn wind"}))
        assert session.get(task["taskId"])["status"] == "working"
        emulator.advance(80)
        ended = session.until_ended(task["taskId"])
        assert ended["status"] == "completed"
        if era == MODERN:
            result = ended["result"]
            check(MODERN, "CallToolResult", result)
        else:
            result = session.result("tasks/result", {"taskId": task["taskId"]})
            check(LEGACY, "CallToolResult", result)
        assert Path(result["structuredContent"]["video_path"]).is_file()
    assert emulator.creates() == 1


@pytest.mark.parametrize("era", ERAS)
def test_over_http_bad_input_is_an_immediate_error_with_no_task(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    with http_session(emulator, tmp_path, era) as session:
        answer = session.call(
            "generate_video", {"prompt": "fox", "resolution": 1080, "duration": 10}
        )
        if era == MODERN:
            assert answer["result"]["isError"] is True
            assert answer["result"]["resultType"] == "complete"
        else:
            assert answer["error"]["code"] == -32602
    assert emulator.creates() == 0


@pytest.mark.parametrize("era", ERAS)
def test_over_http_a_restarted_server_answers_for_the_task_and_finishes_it(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    with http_session(emulator, tmp_path, era) as first:
        task = first.created(first.call("generate_video", {"prompt": "a harbour at dawn"}))
    emulator.advance(80)  # it completes while no server runs
    with http_session(emulator, tmp_path, era) as second:
        ended = second.until_ended(task["taskId"])
        assert ended["status"] == "completed"
        missing = second.error("tasks/get", {"taskId": "not-a-task"})
        assert missing["code"] == -32602
    assert emulator.creates() == 1


@pytest.mark.parametrize("era", ERAS)
def test_over_http_a_cancelled_task_stays_cancelled_and_its_video_is_saved(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    with http_session(emulator, tmp_path, era) as session:
        task = session.created(session.call("generate_video", {"prompt": "rain"}))
        session.result("tasks/cancel", {"taskId": task["taskId"]})
        assert session.get(task["taskId"])["status"] == "cancelled"
        emulator.advance(80)
        wait_for(lambda: "was saved at" in session.get(task["taskId"])["statusMessage"])
        final = session.get(task["taskId"])
        assert final["status"] == "cancelled"
        saved = final["statusMessage"].split("was saved at ")[1].rstrip(".")
        assert Path(saved).is_file()
    assert emulator.creates() == 1
