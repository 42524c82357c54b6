"""Error results every client accepts: one format, the kind and task id in the text, and a
structuredContent that is either absent or valid against the tool's declared outputSchema
(the TypeScript SDK throws away a result whose structuredContent does not validate)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client
from mcp.types import CallToolResult

from hailuo_mcp.config import Settings
from hailuo_mcp.emulator import Emulator, Fault
from hailuo_mcp.server import build_server
from tests.support import error_of, make_settings, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.emulator(clock=100, seed=11, fixed_durations=None)]


@pytest.fixture
def settings(emulator: Emulator, tmp_path: Path) -> Settings:
    return make_settings(emulator, tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as c:
        yield c


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    """Call a tool and check the answer against the tool's declared outputSchema."""
    with anyio.fail_after(30):
        result = await client.call_tool(tool, arguments)
    (declared,) = [t for t in (await client.list_tools()).tools if t.name == tool]
    if result.structured_content is not None:
        assert declared.output_schema is not None
        jsonschema.validate(result.structured_content, declared.output_schema)
    return result


async def test_an_error_before_any_task_carries_no_structured_content_but_says_it_all(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path).model_copy(update={"api_key": None})
    async with Client(build_server(settings)) as c:
        result = await call(c, "generate_video", {"prompt": "hello"})
    error = error_of(result)
    assert error["error_kind"] == "configuration" and "task_id" not in error
    assert result.structured_content is None
    assert "PIAPI_API_KEY is not set" in text_of(result)


async def test_an_error_after_a_create_validates_and_names_the_task(
    client: Client, emulator: Emulator
) -> None:
    emulator.fail_next_tasks(1, message="content policy violation")
    result = await call(client, "generate_video", {"prompt": "something"})
    error = error_of(result)
    (task_id,) = emulator.task_ids()
    assert error["error_kind"] == "task_failed" and error["task_id"] == task_id
    data = result.structured_content or {}
    assert data["task_id"] == task_id and data["status"] == "failed"
    assert data["error_kind"] == "task_failed" and "content policy" in data["error_message"]


async def test_an_unknown_task_is_an_error_result_with_its_id(client: Client) -> None:
    task_id = "00000000-0000-4000-8000-000000000000"
    result = await call(client, "get_task", {"task_id": task_id})
    error = error_of(result)
    assert (error["error_kind"], error["task_id"]) == ("task_not_found", task_id)


async def test_out_of_credits_is_an_error_result_every_client_reads(
    client: Client, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("create", "status", status=402))
    result = await call(client, "generate_video", {"prompt": "x"})
    assert error_of(result)["error_kind"] == "insufficient_credits"
    assert "credits" in text_of(result)


@pytest.mark.parametrize(
    ("arguments", "lines"),
    [
        ({"prompt": "x", "duration": 7}, ["duration: must be 6 or 10"]),
        ({"prompt": "x", "resolution": 720}, ["resolution: must be 768 or 1080"]),
        ({}, ["prompt: is required"]),
        ({"prompt": "x", "wait_seconds": -1}, ["wait_seconds: must be greater than or equal"]),
        (
            {"prompt": "x", "duration": 7, "model": "v9"},
            ["model: must be 'v2.3' or 'v2.3-fast'", "duration: must be 6 or 10"],
        ),
        (
            {"prompt": "x", "duration": 10, "resolution": 1080},
            ["resolution=1080 with duration=10 is not supported"],
        ),
    ],
)
async def test_argument_errors_are_one_line_per_rule_naming_the_field(
    client: Client, emulator: Emulator, arguments: dict[str, Any], lines: list[str]
) -> None:
    result = await call(client, "generate_video", arguments)
    assert error_of(result)["error_kind"] == "invalid_input"
    text = text_of(result)
    for line in lines:
        assert line in text
    assert text.count("\n") == len(lines) - 1  # one line per broken rule
    for noise in ("pydantic", "validation error for", "generate_videoArguments", "input_value"):
        assert noise not in text
    assert emulator.creates() == 0


async def test_a_too_long_prompt_is_refused_without_echoing_it(
    client: Client, emulator: Emulator
) -> None:
    prompt = "a slow pan over the harbour " * 80  # 2240 characters
    result = await call(client, "generate_video", {"prompt": prompt})
    assert error_of(result)["error_kind"] == "invalid_input"
    text = text_of(result)
    assert "prompt" in text and "2000" in text
    assert "harbour" not in text
    assert emulator.creates() == 0


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"duration": 10, "resolution": 1080}, "resolution=1080 with duration=10"),
        ({"duration": 8}, "duration: must be 6 or 10"),
    ],
)
async def test_estimate_cost_errors_use_the_same_format(
    client: Client, arguments: dict[str, Any], words: str
) -> None:
    result = await call(client, "estimate_cost", arguments)
    assert error_of(result)["error_kind"] == "invalid_input"
    assert words in text_of(result)
    assert result.structured_content is None


async def test_a_bad_setting_is_told_through_the_tools_that_depend_on_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path, HAILUO_WAIT_SECONDS="abc")
    async with Client(build_server(settings)) as c:
        generated = await call(c, "generate_video", {"prompt": "x"})
        looked_up = await call(c, "get_task", {"task_id": "abc123"})
        priced = await call(c, "estimate_cost", {})
    for result in (generated, looked_up):
        assert error_of(result)["error_kind"] == "configuration"
        assert "HAILUO_WAIT_SECONDS" in text_of(result) and "number" in text_of(result)
    assert emulator.creates() == 0
    # A tool that does not depend on it keeps working.
    assert not priced.is_error and (priced.structured_content or {})["usd"] == 0.23


async def test_a_create_answered_404_points_at_the_base_url_not_at_a_task(
    client: Client, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("create", "status", status=404))
    result = await call(client, "generate_video", {"prompt": "x"})
    assert error_of(result)["error_kind"] == "configuration"
    assert "PIAPI_BASE_URL" in text_of(result) and "no such task" not in text_of(result)
