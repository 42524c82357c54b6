"""The two prompts through real clients: the Python SDK client in-process and over stdio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import GetPromptResult, TextContent

from hailuo_mcp.config import Settings
from hailuo_mcp.pricing import PRICES_USD
from hailuo_mcp.server import build_server
from tests.interop_support import REPO_ROOT, hailuo_command, server_env

ERAS = ["auto", "legacy"]
TIMEOUT_S = 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=ERAS)
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    """The in-process server (no key: prompts need none), in either protocol era."""
    settings = Settings.from_env(
        {"HAILUO_STATE_DIR": str(tmp_path / "state"), "HAILUO_OUTPUT_DIR": str(tmp_path / "v")}
    )
    async with Client(build_server(settings), mode=request.param) as session:
        yield session


def text_of(result: GetPromptResult) -> str:
    assert len(result.messages) == 1 and result.messages[0].role == "user"
    content = result.messages[0].content
    assert isinstance(content, TextContent)
    return content.text


@pytest.mark.anyio
async def test_both_prompts_are_listed_with_titles_arguments_and_icons(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}

    assert set(prompts) == {"hailuo_prompt_guide", "storyboard"}
    for prompt in prompts.values():
        assert prompt.title and prompt.description
        assert {icon.mime_type for icon in prompt.icons or []} == {"image/svg+xml", "image/png"}
    guide_args = {a.name: a for a in prompts["hailuo_prompt_guide"].arguments or []}
    assert list(guide_args) == ["idea"] and not guide_args["idea"].required
    board_args = {a.name: a for a in prompts["storyboard"].arguments or []}
    assert list(board_args) == ["idea", "shots"]
    assert board_args["idea"].required and not board_args["shots"].required
    assert "2 to 10" in (board_args["shots"].description or "")


@pytest.mark.anyio
async def test_the_guide_covers_the_five_parts_expand_prompt_and_every_price(
    client: Client,
) -> None:
    text = text_of(await client.get_prompt("hailuo_prompt_guide"))

    for part in ("1. Subject:", "2. Motion:", "3. Camera:", "4. Light:", "5. Style:"):
        assert part in text
    assert "expand_prompt" in text and "expand_prompt=false" in text
    assert "HAILUO_EXPAND_PROMPT_DEFAULT=0" in text
    for (model, duration, resolution), usd in PRICES_USD.items():
        assert f"- {model}, {duration} s, {resolution}p: ${usd:.2f}" in text
    assert text.rstrip().endswith(
        "Follow this guide whenever you write a prompt for generate_video."
    )


@pytest.mark.anyio
async def test_the_guide_applied_to_an_idea_ends_with_the_idea(client: Client) -> None:
    text = text_of(await client.get_prompt("hailuo_prompt_guide", {"idea": "  autumn wind "}))

    assert text.rstrip().endswith("before calling generate_video:\n\nautumn wind")


@pytest.mark.anyio
async def test_a_storyboard_plans_consistent_six_second_shots_priced_from_the_table(
    client: Client,
) -> None:
    text = text_of(
        await client.get_prompt(
            "storyboard", {"idea": "a lighthouse keeper's last night", "shots": "3"}
        )
    )

    assert text.startswith("Plan a storyboard of 3 shots of 6 seconds each")
    assert "Idea: a lighthouse keeper's last night" in text
    assert "numbered 1 to 3" in text
    assert "word for word" in text  # the continuity lines every shot repeats
    price, price_1080 = PRICES_USD[("v2.3", 6, 768)], PRICES_USD[("v2.3", 6, 1080)]
    assert f"3 videos x ${price:.2f} = ${price * 3:.2f}" in text
    assert f"(${price_1080 * 3:.2f} at 1080p)" in text
    assert "duration=6 and\nexpand_prompt=false" in text
    assert "Generate nothing before I confirm" in text


@pytest.mark.anyio
async def test_a_storyboard_has_four_shots_unless_asked(client: Client) -> None:
    text = text_of(await client.get_prompt("storyboard", {"idea": "a paper boat"}))

    assert text.startswith("Plan a storyboard of 4 shots")


@pytest.mark.anyio
@pytest.mark.parametrize("shots", ["1", "11", "three", "2.5", ""])
async def test_a_storyboard_refuses_a_shot_count_outside_two_to_ten_saying_the_rule(
    client: Client, shots: str
) -> None:
    with pytest.raises(MCPError) as refused:
        await client.get_prompt("storyboard", {"idea": "a paper boat", "shots": shots})

    assert refused.value.code == -32602
    assert "shots must be a whole number from 2 to 10" in refused.value.message


@pytest.mark.anyio
async def test_a_storyboard_refuses_an_empty_idea(client: Client) -> None:
    with pytest.raises(MCPError) as refused:
        await client.get_prompt("storyboard", {"idea": "   "})

    assert refused.value.message == "idea must not be empty"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_the_prompts_over_stdio_from_the_real_server_process(
    tmp_path: Path, mode: str
) -> None:
    command, *args = hailuo_command()
    params = StdioServerParameters(
        command=command, args=args, env=server_env(None, tmp_path), cwd=REPO_ROOT
    )
    with anyio.fail_after(TIMEOUT_S):
        async with Client(params, mode=mode) as session:
            names = {p.name for p in (await session.list_prompts()).prompts}
            board = await session.get_prompt("storyboard", {"idea": "a red kite", "shots": "5"})
            guide = await session.get_prompt("hailuo_prompt_guide", {"idea": "a red kite"})

    assert names == {"hailuo_prompt_guide", "storyboard"}
    assert text_of(board).startswith("Plan a storyboard of 5 shots")
    assert text_of(guide).rstrip().endswith("a red kite")
