"""The money tools: spending_summary (from the ledger) and check_balance (from PiAPI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from hailuo_mcp.callers import caller_of
from hailuo_mcp.errors import HailuoError
from hailuo_mcp.runtime import runtime_of
from hailuo_mcp.spending import Balance, SpendingSummary
from hailuo_mcp.tool_results import error_result, spending_text

Registrar = Callable[[str, ToolAnnotations], Callable[[Any], Any]]


def register_cost_tools(mcp: Any, tool: Registrar) -> None:
    """Add spending_summary and check_balance to the server."""

    @tool(
        "Summarise Hailuo spending",
        ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def spending_summary(ctx: Context) -> Annotated[CallToolResult, SpendingSummary]:
        """What this server's videos cost: today, this month and all time, by model.

        From the local ledger (no upstream call): completed tasks count what PiAPI charged,
        tasks still running count their price. Also shows the spending caps in force.
        """
        runtime = runtime_of(ctx)
        try:
            runtime.settings.check(["HAILUO_STATE_DIR", "HAILUO_POINTS_PER_USD"])
            service = runtime.service.for_caller(caller_of(ctx.request_context))
            summary_ = await service.spending()
        except HailuoError as exc:
            return await error_result(exc, runtime)
        return CallToolResult(
            content=[TextContent(type="text", text=spending_text(summary_))],
            structured_content=summary_.model_dump(mode="json"),
        )

    @tool(
        "Check the PiAPI balance",
        ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def check_balance(ctx: Context) -> Annotated[CallToolResult, Balance]:
        """The PiAPI account's balance (USD and credits), read from PiAPI now.

        generate_video warns when a balance seen in the last 10 minutes will not cover a video.
        """
        runtime = runtime_of(ctx)
        try:
            service = runtime.service.for_caller(caller_of(ctx.request_context))
            balance = await service.balance()
        except HailuoError as exc:
            return await error_result(exc, runtime)
        held = (
            f", {balance.frozen_credits:,} credits held for running tasks"
            if balance.frozen_credits
            else ""
        )
        text = f"PiAPI balance: ${balance.usd:.2f}{held} (checked {balance.checked_at})."
        return CallToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content=balance.model_dump(mode="json"),
        )
