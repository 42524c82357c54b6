"""Asking the user before a price above HAILUO_CONFIRM_ABOVE_USD is spent (MCP elicitation).

A resolver on generate_video (the SDK's `Resolve`) runs before the tool body. It asks only when
the price is above the threshold; the SDK carries the question the way the protocol era allows
(`elicitation/create` on 2025-11-25, an input-required round trip on 2026-07-28). A client that
cannot elicit gets `CannotAsk`, which the tool answers as an error saying how to change the
threshold: never a crash, never a silent spend. The question is built from the arguments only,
since the resolver may run again on the client's retry.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import ConfirmationUnavailableError, InputError
from hailuo_mcp.models import Duration, Resolution, TaskStatus, Variant
from hailuo_mcp.pricing import estimate
from hailuo_mcp.results import VideoResult
from hailuo_mcp.runtime import Runtime
from hailuo_mcp.tool_results import error_result


class SpendConfirmation(BaseModel):
    """The form the user answers."""

    # These three are built when first asked for: most calls ask nothing.
    model_config = ConfigDict(defer_build=True)

    confirm: bool = Field(title="Create and pay for this video", description="Yes to go ahead")


class NoQuestion(BaseModel):
    """Nothing to ask: below the threshold, no threshold, or arguments the tool refuses."""

    model_config = ConfigDict(defer_build=True)


class CannotAsk(BaseModel):
    """A question was due, but the client declared no form elicitation."""

    model_config = ConfigDict(defer_build=True)

    price_usd: float
    threshold_usd: float


def can_elicit(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared form elicitation (a bare `elicitation: {}` counts)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


async def confirm_spend(
    ctx: Context[Any, Any],
    prompt: str,
    model: Variant,
    duration: Duration,
    resolution: Resolution,
) -> Elicit[SpendConfirmation] | NoQuestion | CannotAsk:
    """generate_video's resolver: a question when the price needs the user's yes."""
    settings = getattr(ctx.request_context.lifespan_context, "settings", None)
    if not isinstance(settings, Settings) or settings.confirm_above_usd is None:
        return NoQuestion()
    threshold = settings.confirm_above_usd
    try:
        price = estimate(model, duration, resolution, points_per_usd=settings.points_per_usd)
    except InputError:
        return NoQuestion()  # the tool refuses these arguments itself
    if price.usd <= threshold:
        return NoQuestion()
    if not can_elicit(ctx):
        return CannotAsk(price_usd=price.usd, threshold_usd=threshold)
    shown = prompt if len(prompt) <= 200 else prompt[:199] + "…"
    return Elicit(
        f"Generate a Hailuo video for ${price.usd:.2f} (above your ${threshold:.2f} "
        f"confirmation threshold)? {model} · {duration} s · {resolution}p: «{shown}». PiAPI "
        "charges when the video completes.",
        SpendConfirmation,
    )


async def unconfirmed_answer(
    outcome: ElicitationResult[SpendConfirmation], runtime: Runtime
) -> CallToolResult | None:
    """The answer when the user did not confirm the price; None to go ahead."""
    if isinstance(outcome, AcceptedElicitation):
        data: object = outcome.data
        if isinstance(data, CannotAsk):
            return await error_result(
                ConfirmationUnavailableError(
                    f"This video costs ${data.price_usd:.2f}, above the server's confirmation "
                    f"threshold of ${data.threshold_usd:.2f} (HAILUO_CONFIRM_ABOVE_USD), and this "
                    "client cannot ask you to confirm (it supports no elicitation). Nothing was "
                    "created. Raise HAILUO_CONFIRM_ABOVE_USD (or unset it) in the server's "
                    "configuration, or use a client that supports elicitation."
                ),
                runtime,
            )
        if not isinstance(data, SpendConfirmation) or data.confirm:
            return None
    declined = VideoResult(
        task_id=None,
        status=TaskStatus.CANCELLED,
        done=True,
        next_step="You declined the price: nothing was created or charged.",
    )
    return CallToolResult(
        content=[TextContent(type="text", text="Not created: " + declined.next_step)],
        structured_content=declined.model_dump(mode="json"),
    )
