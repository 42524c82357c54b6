"""Webhook delivery: POST the task to ``config.webhook_config.endpoint`` when it ends.

PiAPI sends ``{"timestamp": <unix seconds>, "data": <task>}`` with the secret verbatim in
``x-webhook-secret`` and retries non-2xx answers; the emulator retries
``webhook_attempts`` times in all, ``webhook_interval_s`` emulated seconds apart. Which
attempts are due is decided by ``State.due_webhooks`` against the emulated clock, so
``advance()`` triggers deliveries as well as real time does.
"""

from __future__ import annotations

import logging

import httpx

from hailuo_mcp.emulator.responses import dump
from hailuo_mcp.emulator.state import DueWebhook

logger = logging.getLogger(__name__)


async def deliver(client: httpx.AsyncClient, due: DueWebhook, timeout_s: float) -> int | None:
    """Make one delivery attempt; return the HTTP status, or ``None`` if none came back."""
    try:
        response = await client.post(
            due.endpoint, content=dump(due.body), headers=due.headers, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        logger.info("webhook to %s for task %s failed: %r", due.endpoint, due.task_id, exc)
        return None
    return response.status_code
