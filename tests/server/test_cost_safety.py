"""No surprise spend: caps, confirmation above a threshold, the repeat guard and the spend
summary, each against the emulator through a real in-process client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import ElicitRequestParams, ElicitResult

from hailuo_mcp.config import Settings
from hailuo_mcp.emulator import Emulator
from hailuo_mcp.server import build_server
from tests.support import MANUAL, MakeEmulator, error_of, make_settings, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.emulator(clock=100, seed=21, fixed_durations=None)]

ERAS = ["modern", "legacy"]


def client(settings: Settings, era: str = "modern", **options: Any) -> Client:
    mode: Any = "legacy" if era == "legacy" else "auto"
    return Client(build_server(settings), mode=mode, **options)


async def generate(c: Client, **arguments: Any) -> Any:
    with anyio.fail_after(30):
        return await c.call_tool("generate_video", {"wait_seconds": 0, **arguments})


async def test_a_call_above_the_per_call_cap_is_refused_before_any_create(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path, HAILUO_MAX_COST_PER_CALL_USD="0.30")
    async with client(settings) as c:
        refused = await generate(c, prompt="x", resolution=1080)
        allowed = await generate(c, prompt="x")
    assert error_of(refused)["error_kind"] == "over_budget"
    text = text_of(refused)
    assert "$0.40" in text and "$0.30" in text and "HAILUO_MAX_COST_PER_CALL_USD" in text
    assert not allowed.is_error
    assert emulator.creates() == 1


@pytest.mark.emulator(clock=MANUAL, seed=21, fixed_durations=None)  # in flight until advanced
async def test_the_day_cap_counts_tasks_still_in_flight(emulator: Emulator, tmp_path: Path) -> None:
    settings = make_settings(
        emulator, tmp_path, HAILUO_MAX_SPEND_PER_DAY_USD="0.50", HAILUO_EXPECTED_SECONDS="77"
    )
    async with client(settings) as c:
        first = await generate(c, prompt="one")
        second = await generate(c, prompt="two")
        third = await generate(c, prompt="three")
    assert not first.is_error and not second.is_error
    assert error_of(third)["error_kind"] == "over_budget"
    text = text_of(third)
    assert "$0.46 in tasks still running" in text and "HAILUO_MAX_SPEND_PER_DAY_USD" in text
    assert emulator.creates() == 2


def answering(answer: ElicitResult, asked: list[str]) -> Any:
    async def callback(context: Any, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return answer

    return callback


@pytest.mark.parametrize("era", ERAS)
async def test_a_confirmed_price_above_the_threshold_is_created(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    settings = make_settings(emulator, tmp_path, HAILUO_CONFIRM_ABOVE_USD="0.30")
    asked: list[str] = []
    yes = ElicitResult(action="accept", content={"confirm": True})
    async with client(settings, era, elicitation_callback=answering(yes, asked)) as c:
        cheap = await generate(c, prompt="cheap")
        dear = await generate(c, prompt="dear", resolution=1080)
    assert not cheap.is_error and not dear.is_error, text_of(dear)
    (question,) = asked  # only the one above the threshold was asked
    assert "$0.40" in question and "$0.30" in question and "dear" in question
    assert emulator.creates() == 2


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    "answer",
    [
        ElicitResult(action="accept", content={"confirm": False}),
        ElicitResult(action="decline"),
        ElicitResult(action="cancel"),
    ],
    ids=["no", "decline", "cancel"],
)
async def test_a_refused_confirmation_creates_nothing_and_says_so(
    emulator: Emulator, tmp_path: Path, era: str, answer: ElicitResult
) -> None:
    settings = make_settings(emulator, tmp_path, HAILUO_CONFIRM_ABOVE_USD="0.30")
    async with client(settings, era, elicitation_callback=answering(answer, [])) as c:
        result = await generate(c, prompt="dear", resolution=1080)
    assert not result.is_error
    assert "nothing was created or charged" in text_of(result)
    data = result.structured_content or {}
    assert data["task_id"] is None and data["done"] is True
    assert emulator.creates() == 0


@pytest.mark.parametrize("era", ERAS)
async def test_a_client_that_cannot_confirm_is_refused_with_the_setting_to_change(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    settings = make_settings(emulator, tmp_path, HAILUO_CONFIRM_ABOVE_USD="0.30")
    async with client(settings, era) as c:  # no elicitation callback: no capability declared
        result = await generate(c, prompt="dear", resolution=1080)
    assert error_of(result)["error_kind"] == "confirmation_required"
    assert "HAILUO_CONFIRM_ABOVE_USD" in text_of(result)
    assert emulator.creates() == 0


async def test_the_same_request_again_returns_the_earlier_task_without_paying(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path)
    async with client(settings) as c:
        first = await generate(c, prompt="a red kite", wait_seconds=20)
        again = await generate(c, prompt="a red kite", wait_seconds=20)
        forced = await generate(c, prompt="a red kite", allow_duplicate=True)
        other = await generate(c, prompt="a red kite", duration=10)
    one, two = first.structured_content or {}, again.structured_content or {}
    assert two["task_id"] == one["task_id"] and two["video_path"] == one["video_path"]
    assert "nothing new was created or charged" in text_of(again)
    assert "allow_duplicate=true" in text_of(again)
    assert (forced.structured_content or {})["task_id"] != one["task_id"]
    assert (other.structured_content or {})["task_id"] != one["task_id"]
    assert emulator.creates() == 3


async def test_the_spend_summary_crosses_midnight_on_the_servers_clock(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path)
    shift = [0.0]  # seconds added to the real clock: a day later, the task was yesterday's
    async with Client(build_server(settings, clock=lambda: time.time() + shift[0])) as c:
        made = await generate(c, prompt="x", wait_seconds=20)
        assert (made.structured_content or {})["done"] is True
        today = (await c.call_tool("spending_summary", {})).structured_content or {}
        shift[0] = 24 * 3600.0
        tomorrow = await c.call_tool("spending_summary", {})
    assert today["today"]["spent_usd"] == 0.23 and today["today"]["completed"] == 1
    assert today["today"]["by_model"][0]["model"] == "v2.3"
    data = tomorrow.structured_content or {}
    assert data["today"]["spent_usd"] == 0 and data["all_time"]["spent_usd"] == 0.23
    assert "Today: $0.00" in text_of(tomorrow) and "All time: $0.23" in text_of(tomorrow)


async def test_check_balance_reads_the_account_and_generate_warns_when_it_will_not_cover(
    make_emulator: MakeEmulator,
    tmp_path: Path,
) -> None:
    # The emulator is told not to answer 402 itself, so the answer shows our own warning
    # (with the 402 on, the create would be refused as insufficient_credits instead).
    emu = make_emulator(
        clock=MANUAL, seed=21, fixed_durations=None, balance_usd=0.30, enforce_balance=False
    )
    settings = make_settings(emu, tmp_path, HAILUO_EXPECTED_SECONDS="77")
    async with client(settings) as c:
        unwarned = await generate(c, prompt="before any balance was seen")
        balance = await c.call_tool("check_balance", {})
        dear = await generate(c, prompt="a dear one", duration=10)
    assert not unwarned.is_error and not (unwarned.structured_content or {})["warnings"]
    data = balance.structured_content or {}
    assert data["usd"] == 0.30 and data["frozen_credits"] == 2_300_000
    assert "PiAPI balance: $0.30" in text_of(balance)
    # $0.30 seen (with $0.23 held), less than this $0.45 video: warned before paying.
    assert "less than this video's $0.45" in text_of(dear)


async def test_check_balance_without_a_key_says_how_to_set_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path).model_copy(update={"api_key": None})
    async with client(settings) as c:
        result = await c.call_tool("check_balance", {})
    assert error_of(result)["error_kind"] == "configuration"
    assert "PIAPI_API_KEY" in text_of(result)
