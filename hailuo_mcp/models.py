"""Request and task models: the seed's input rules, and a tolerant reading of PiAPI's task."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Variant = Literal["v2.3", "v2.3-fast"]
Duration = Literal[6, 10]
Resolution = Literal[768, 1080]

PROMPT_MAX_CHARS = 2000
# A task id is only ever used as an URL segment and a file name: allow nothing that walks paths.
TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
_TASK_ID_RE = re.compile(TASK_ID_PATTERN)
# The same rule in words, for the errors that refuse an id.
TASK_ID_RULE = "letters, digits, '-' and '_' (a letter or digit first), at most 128 characters"
# C0 controls other than tab, newline and carriage return, plus DEL: never meaningful in a prompt.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class TaskStatus(StrEnum):
    """PiAPI task statuses (lowercase on the wire); UNKNOWN for anything new."""

    STAGED = "staged"
    PENDING = "pending"
    PROCESSING = "processing"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the task can no longer change."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)

    @property
    def is_started(self) -> bool:
        """Whether generation has begun (left the queue)."""
        return self in (TaskStatus.PROCESSING, TaskStatus.RUNNING) or self.is_terminal

    @classmethod
    def parse(cls, raw: object) -> TaskStatus:
        """Read a status tolerantly: case-insensitive, unknown values kept as UNKNOWN."""
        try:
            return cls(str(raw).strip().lower())
        except ValueError:
            return cls.UNKNOWN


def is_valid_task_id(task_id: str) -> bool:
    """Whether a task id is safe to put in an URL path and a file name."""
    return bool(_TASK_ID_RE.fullmatch(task_id))


def check_prompt(prompt: str) -> str:
    """Apply the seed's prompt rules; raise ValueError naming the field and the rule."""
    if not prompt.strip():
        raise ValueError("prompt is required and must not be blank")
    if len(prompt) > PROMPT_MAX_CHARS:
        raise ValueError(
            f"prompt has {len(prompt)} characters; the limit is {PROMPT_MAX_CHARS} characters"
        )
    if _CONTROL_RE.search(prompt):
        raise ValueError("prompt contains control characters (e.g. NUL); remove them")
    return prompt


# Models no tool schema needs are built on first use (defer_build): not a cost of start-up.


class VideoRequest(BaseModel):
    """One generation as the user asked for it, checked against the seed's rules."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    prompt: str = Field(max_length=PROMPT_MAX_CHARS)
    model: Variant = "v2.3"
    image_url: str | None = None
    duration: Duration = 6
    resolution: Resolution = 768
    expand_prompt: bool = True

    @field_validator("prompt")
    @classmethod
    def _prompt_rules(cls, prompt: str) -> str:
        return check_prompt(prompt)

    @field_validator("image_url")
    @classmethod
    def _image_url_not_blank(cls, image_url: str | None) -> str | None:
        if image_url is not None and not image_url.strip():
            return None
        return image_url.strip() if image_url is not None else None

    @model_validator(mode="after")
    def _combination_rules(self) -> VideoRequest:
        if self.resolution == 1080 and self.duration == 10:
            raise ValueError(
                "resolution=1080 with duration=10 is not supported: use duration=6 at 1080, "
                "or resolution=768 for 10 s"
            )
        return self

    def upstream_input(self) -> dict[str, Any]:
        """The `input` object of PiAPI's create body (variant in `input.model`)."""
        body: dict[str, Any] = {
            "prompt": self.prompt,
            "model": self.model,
            "expand_prompt": self.expand_prompt,
            "duration": self.duration,
            "resolution": self.resolution,
        }
        if self.image_url:
            body["image_url"] = self.image_url
        return body


_ZERO_TIME_PREFIX = "0001-01-01"


def parse_time(raw: object) -> datetime | None:
    """Parse PiAPI's RFC 3339 nanosecond timestamps; the zero time means 'not reached'."""
    if not isinstance(raw, str) or not raw or raw.startswith(_ZERO_TIME_PREFIX):
        return None
    text = raw.strip().replace("Z", "+00:00")
    # Python keeps microseconds: cut the fraction to six digits.
    match = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$", text)
    if match:
        head, frac, tail = match.groups()
        text = head + (frac[:7] if frac else "") + tail
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


class Task(BaseModel):
    """What we keep of an upstream task object, read tolerantly."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    task_id: str
    status: TaskStatus
    video_url: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    frozen_points: int | None = None
    consumed_points: int | None = None
    input: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_upstream(cls, data: dict[str, Any]) -> Task:
        """Read a PiAPI task object; the URL from `video`, else `video_url`, else `download_url`."""
        output = _as_dict(data.get("output"))
        video_url = None
        for key in ("video", "video_url", "download_url"):
            candidate = output.get(key)
            if isinstance(candidate, str) and candidate.strip():
                video_url = candidate.strip()
                break
        meta = _as_dict(data.get("meta"))
        usage = _as_dict(meta.get("usage"))
        error = _as_dict(data.get("error"))
        message = str(error.get("message") or error.get("raw_message") or "").strip() or None
        code = _as_int(error.get("code"))
        return cls(
            task_id=str(data.get("task_id") or ""),
            status=TaskStatus.parse(data.get("status")),
            video_url=video_url,
            error_code=code if code else None,
            error_message=message,
            created_at=parse_time(meta.get("created_at")),
            started_at=parse_time(meta.get("started_at")),
            ended_at=parse_time(meta.get("ended_at")),
            frozen_points=_as_int(usage.get("frozen")),
            consumed_points=_as_int(usage.get("consume")),
            input=_as_dict(data.get("input")),
        )


def _rule(message: str) -> str:
    return message.removeprefix("Value error, ").replace("Input should be", "must be")


def validation_message(exc: ValidationError) -> str:
    """One line per broken rule, naming the field; never echoes the (possibly huge) input."""
    lines = []
    # The context is read for the broken pattern only; neither it nor the input is echoed.
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(x) for x in error["loc"]) or "request"
        message = _rule(str(error["msg"]))
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a parameter of this tool"
        elif (error.get("ctx") or {}).get("pattern") == TASK_ID_PATTERN:
            message = f"must be a PiAPI task id ({TASK_ID_RULE})"  # words, not the regex
        lines.append(message if field in message else f"{field}: {message}")
    return "\n".join(dict.fromkeys(lines))
