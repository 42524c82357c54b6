"""Emulated tasks and the task object PiAPI answers, computed from the clock on every read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from hailuo_mcp.emulator.clock import NS_PER_S, rfc3339_ns
from hailuo_mcp.emulator.rules import CreateRequest

Status = Literal["pending", "processing", "completed", "failed"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed"})
IMAGE_RULE_ERROR_CODE = 10000


@dataclass(frozen=True)
class FailSpec:
    """How a task scripted to fail upstream reports it."""

    code: int
    message: str
    raw_message: str


@dataclass
class EmulatedTask:
    """What the emulator remembers about one task; status is derived, never stored."""

    task_id: str
    request: CreateRequest
    created_ns: int
    queue_ns: int
    generate_ns: int
    output_name: str
    fail: FailSpec | None = None
    stuck: bool = False
    # Image checks: "none" (no image or checks off), "pending", "passed", "failed".
    image_check: str = "none"
    check_done_ns: int | None = None
    image_error: str | None = None
    settled: bool = False
    webhook: WebhookJob | None = None

    def timeline(self, now_ns: int) -> tuple[Status, int | None, int | None]:
        """``(status, started_ns, ended_ns)`` at ``now_ns``; times not reached are ``None``."""
        if self.image_check == "pending":
            # The task waits in the queue until its image has been looked at, so a fast
            # clock can never complete a task whose image is about to be rejected.
            return "pending", None, None
        if self.image_check == "failed":
            return "failed", None, self.check_done_ns
        start = self.created_ns + self.queue_ns
        if self.check_done_ns is not None:
            start = max(start, self.check_done_ns)
        if now_ns < start:
            return "pending", None, None
        end = start + self.generate_ns
        if self.stuck or now_ns < end:
            return "processing", start, None
        return ("failed" if self.fail else "completed"), start, end

    def status(self, now_ns: int) -> Status:
        """The task's status at ``now_ns``."""
        return self.timeline(now_ns)[0]


@dataclass
class WebhookJob:
    """Delivery progress of one task's webhook."""

    endpoint: str
    secret: str
    attempts: int = 0
    next_due_ns: int | None = None
    in_flight: bool = False
    done: bool = False


@dataclass(frozen=True)
class RenderOptions:
    """Per-emulator choices about how task objects look."""

    base_url: str
    output_key: str = "video"
    empty_output: bool = False


def render_task(record: EmulatedTask, now_ns: int, options: RenderOptions) -> dict[str, Any]:
    """The task object (the envelope's ``data``) as PiAPI would answer it at ``now_ns``."""
    status, started, ended = record.timeline(now_ns)
    price = record.request.price_points
    if status == "completed":
        frozen, consume = 0, price
        output: dict[str, Any] | None = {
            options.output_key: f"{options.base_url}/ephemeral/{record.output_name}"
        }
    else:
        # Credits are frozen while the task may still succeed and released on failure.
        frozen, consume = (0, 0) if status == "failed" else (price, 0)
        output = {options.output_key: ""} if options.empty_output else None
    error: dict[str, Any] = {"code": 0, "raw_message": "", "message": "", "detail": None}
    if status == "failed":
        if record.image_error is not None:
            error.update(
                code=IMAGE_RULE_ERROR_CODE,
                message=f"invalid image_url: {record.image_error}",
                raw_message=record.image_error,
            )
        elif record.fail is not None:
            error.update(
                code=record.fail.code,
                message=record.fail.message,
                raw_message=record.fail.raw_message,
            )
    return {
        "task_id": record.task_id,
        "model": "hailuo",
        "task_type": "video_generation",
        "status": status,
        "config": record.request.config_echo(),
        "input": record.request.input_echo(),
        "output": output,
        "meta": {
            "created_at": rfc3339_ns(record.created_ns),
            "started_at": rfc3339_ns(started),
            "ended_at": rfc3339_ns(ended),
            "usage": {"type": "llm", "frozen": frozen, "consume": consume},
            "is_using_private_pool": False,
        },
        "detail": None,
        "logs": [],
        "error": error,
    }


def seconds_to_ns(seconds: float) -> int:
    """Emulated seconds to integer nanoseconds."""
    return int(round(seconds * NS_PER_S))
