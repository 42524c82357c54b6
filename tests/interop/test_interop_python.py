"""The Python SDK client against the real server process, in both protocol eras.

`mode="auto"` (the default) settles on 2026-07-28 (no handshake, `server/discover`);
`mode="legacy"` runs the 2025-11-25 initialize handshake, as the TypeScript SDK 1.x and the
Inspector do. The Python client validates structuredContent only on success, so error results
are checked here against the outputSchema with jsonschema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

from hailuo_mcp.emulator import Emulator
from tests.interop_support import REPO_ROOT, check_against_schema, hailuo_command, server_env

pytestmark = pytest.mark.emulator(clock=100, seed=3, fixed_durations=None)

ERAS = [("auto", "2026-07-28"), ("legacy", "2025-11-25")]
CALL_TIMEOUT_S = 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client(env: dict[str, str], mode: str) -> Client:
    command, *args = hailuo_command()
    params = StdioServerParameters(command=command, args=args, env=env, cwd=REPO_ROOT)
    return Client(params, mode=mode)


def text_of(content: list[Any]) -> str:
    return "\n".join(block.text for block in content if isinstance(block, TextContent))


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "version"), ERAS)
async def test_the_python_client_generates_a_video_with_rising_progress_in_either_era(
    emulator: Emulator, tmp_path: Path, mode: str, version: str
) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    with anyio.fail_after(CALL_TIMEOUT_S):
        async with client(server_env(emulator, tmp_path), mode) as session:
            assert session.protocol_version == version
            result = await session.call_tool(
                "generate_video", {"prompt": "a fox"}, progress_callback=on_progress
            )

    assert not result.is_error, result
    assert result.structured_content is not None
    video = Path(result.structured_content["video_path"])
    assert video.is_file() and result.structured_content["task_id"] in text_of(result.content)
    assert len(seen) >= 2 and seen == sorted(set(seen)), seen


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "version"), ERAS)
async def test_the_python_client_reads_a_missing_key_as_a_configuration_result_in_either_era(
    tmp_path: Path, mode: str, version: str
) -> None:
    with anyio.fail_after(CALL_TIMEOUT_S):
        async with client(server_env(None, tmp_path), mode) as session:
            assert session.protocol_version == version
            tools = {t.name: t for t in (await session.list_tools()).tools}
            result = await session.call_tool("generate_video", {"prompt": "a fox"})

    assert result.is_error
    text = text_of(result.content)
    assert "configuration" in text and "PIAPI_API_KEY" in text, text
    check_against_schema(result.structured_content, tools["generate_video"].output_schema)
