"""The Hailuo input table and price table, read independently from PiAPI's Hailuo page.

Choices that page leaves open, and how the emulator fills them (inferred, not PiAPI's word):

* ``input.model`` absent -> ``v2.3`` (the only variant that accepts text-to-video);
* ``expand_prompt`` absent -> ``true`` (MiniMax's prompt optimizer defaults to on, and the
  page's example sends ``true``);
* ``image_url`` absent or ``""`` -> no image, echoed back as ``""`` like the page's example
  response;
* ``duration`` 6 and ``resolution`` 768 by default (the cheapest row of the price table);
* ``config.service_mode`` absent, ``null`` or ``""`` -> ``"public"``; anything else is rejected;
* a prompt of only whitespace counts as missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODELS = ("v2.3", "v2.3-fast")
DURATIONS = (6, 10)
RESOLUTIONS = (768, 1080)
# The client states these limits again in its own code, on purpose: two independent readings
# of the page, so a misreading on one side shows up as a disagreement in the tests.
MAX_PROMPT_CHARS = 2000
POINTS_PER_USD = 10_000_000

# Price per generation in points (1 USD = 10,000,000 points, inferred: the page's example
# $0.23 task consumed 2,300,000). Integers, so sums never drift.
PRICE_POINTS: dict[tuple[str, int, int], int] = {
    ("v2.3", 6, 768): 2_300_000,
    ("v2.3", 10, 768): 4_500_000,
    ("v2.3", 6, 1080): 4_000_000,
    ("v2.3-fast", 6, 768): 1_600_000,
    ("v2.3-fast", 10, 768): 2_600_000,
    ("v2.3-fast", 6, 1080): 2_600_000,
}


class RuleViolation(ValueError):
    """A create request breaks one rule; the message names the field and the rule."""


@dataclass(frozen=True)
class CreateRequest:
    """A validated create request, with every default filled in."""

    prompt: str
    model: str
    duration: int
    resolution: int
    expand_prompt: bool
    image_url: str
    service_mode: str
    webhook_endpoint: str
    webhook_secret: str

    @property
    def price_points(self) -> int:
        """What a successful generation costs, in points."""
        return PRICE_POINTS[(self.model, self.duration, self.resolution)]

    def input_echo(self) -> dict[str, Any]:
        """``input`` as the task object echoes it (six fields, sorted like the page's example)."""
        return {
            "duration": self.duration,
            "expand_prompt": self.expand_prompt,
            "image_url": self.image_url,
            "model": self.model,
            "prompt": self.prompt,
            "resolution": self.resolution,
        }

    def config_echo(self) -> dict[str, Any]:
        """``config`` as the task object echoes it, webhook secret included (PiAPI does)."""
        return {
            "service_mode": self.service_mode,
            "webhook_config": {"endpoint": self.webhook_endpoint, "secret": self.webhook_secret},
        }


def _is_http_url(value: str) -> bool:
    scheme, sep, rest = value.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and bool(rest.strip("/"))


def _strict_int(value: object) -> bool:
    # JSON true/false arrive as bool, which is a subclass of int in Python.
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RuleViolation(f"{field} must be a JSON object")
    return value


def parse_create(body: object) -> CreateRequest:
    """Validate a ``POST /api/v1/task`` body against the Hailuo page's rules.

    Raises:
        RuleViolation: the first rule the body breaks.
    """
    if not isinstance(body, dict):
        raise RuleViolation("request body must be a JSON object")
    if body.get("model") != "hailuo":
        raise RuleViolation(
            f'model must be "hailuo" (got {body.get("model")!r}); the variant goes in input.model'
        )
    if body.get("task_type") != "video_generation":
        raise RuleViolation(f'task_type must be "video_generation" (got {body.get("task_type")!r})')
    if not isinstance(body.get("input"), dict):
        raise RuleViolation("input is required and must be a JSON object")
    data: dict[str, Any] = body["input"]

    prompt = data.get("prompt")
    if prompt is None:
        raise RuleViolation("input.prompt is required")
    if not isinstance(prompt, str):
        raise RuleViolation("input.prompt must be a string")
    if not prompt.strip():
        raise RuleViolation("input.prompt is required and must not be empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise RuleViolation(
            f"input.prompt must be at most {MAX_PROMPT_CHARS} characters (got {len(prompt)})"
        )

    model = data.get("model", "v2.3")
    if model not in MODELS:
        raise RuleViolation(f"input.model must be one of {', '.join(MODELS)} (got {model!r})")

    duration = data.get("duration", 6)
    if not _strict_int(duration) or duration not in DURATIONS:
        raise RuleViolation(f"input.duration must be the integer 6 or 10 (got {duration!r})")

    resolution = data.get("resolution", 768)
    if not _strict_int(resolution) or resolution not in RESOLUTIONS:
        raise RuleViolation(
            f"input.resolution must be the integer 768 or 1080 (got {resolution!r})"
        )
    if resolution == 1080 and duration == 10:
        raise RuleViolation("input.resolution 1080 is not supported with input.duration 10")

    expand_prompt = data.get("expand_prompt", True)
    if not isinstance(expand_prompt, bool):
        raise RuleViolation("input.expand_prompt must be a boolean")

    image_url = data.get("image_url")
    if image_url is None:
        image_url = ""
    if not isinstance(image_url, str):
        raise RuleViolation("input.image_url must be a string URL")
    if image_url and not _is_http_url(image_url):
        raise RuleViolation("input.image_url must be an http(s) URL")
    if model == "v2.3-fast" and not image_url:
        raise RuleViolation(
            "input.model v2.3-fast is image-to-video only: input.image_url is required"
        )

    config = _object(body.get("config"), "config")
    service_mode = config.get("service_mode") or "public"
    if service_mode != "public":
        raise RuleViolation(f'config.service_mode must be "public" (got {service_mode!r})')
    webhook = _object(config.get("webhook_config"), "config.webhook_config")
    endpoint = webhook.get("endpoint") or ""
    secret = webhook.get("secret") or ""
    if not isinstance(endpoint, str) or (endpoint and not _is_http_url(endpoint)):
        raise RuleViolation("config.webhook_config.endpoint must be an http(s) URL")
    if not isinstance(secret, str):
        raise RuleViolation("config.webhook_config.secret must be a string")

    return CreateRequest(
        prompt=prompt,
        model=model,
        duration=duration,
        resolution=resolution,
        expand_prompt=expand_prompt,
        image_url=image_url,
        service_mode=service_mode,
        webhook_endpoint=endpoint,
        webhook_secret=secret,
    )
