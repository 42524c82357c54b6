"""What the tools answer: pydantic models that give each tool its output schema."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hailuo_mcp.models import TaskStatus


class VideoResult(BaseModel):
    """What a tool answers about one task."""

    task_id: str | None = Field(
        description="PiAPI task id; pass it to get_task to check again (None only when nothing "
        "was created: the user declined the price)"
    )
    status: TaskStatus = Field(description="pending, processing, completed, failed, ...")
    done: bool = Field(description="True when the video is saved (or the task ended)")
    video_path: str | None = Field(default=None, description="The saved MP4 on this machine")
    video_url: str | None = Field(
        default=None, description="PiAPI's output URL (ephemeral: it expires)"
    )
    model: str | None = None
    duration: int | None = None
    resolution: int | None = None
    prompt: str | None = None
    cost_usd: float | None = Field(
        default=None, description="Price of the task; charged on successful completion only"
    )
    charged: bool = Field(default=False, description="True once PiAPI consumed the credits")
    emulated: bool = Field(
        default=False, description="True on the built-in emulator (demo): nothing is charged"
    )
    waited_seconds: float = Field(default=0.0, description="How long this call waited")
    generation_seconds: float | None = Field(
        default=None, description="Upstream time from start to end of generation"
    )
    created_at: str | None = Field(default=None, description="When the task was recorded (UTC)")
    next_step: str = Field(description="What to do next, in one sentence")
    warnings: list[str] = Field(
        default_factory=list,
        description="Checks that could not be made before the create (e.g. an image_url that "
        "could not be read from here)",
    )
    error_kind: str | None = Field(
        default=None, description="On an error result: what went wrong, as one word"
    )
    error_message: str | None = Field(default=None, description="On an error result: the error")


class TaskSummary(BaseModel):
    """One task of the ledger, as list_tasks shows it."""

    task_id: str
    status: TaskStatus
    created_at: str = Field(description="When the task was recorded (UTC)")
    prompt: str | None = None
    model: str | None = None
    duration: int | None = None
    resolution: int | None = None
    cost_usd: float | None = Field(
        default=None, description="Charged amount once completed, else the price estimate"
    )
    charged: bool = False
    video_path: str | None = None
    video_url: str | None = None
    error: str | None = None


class TaskList(BaseModel):
    """Recent tasks, newest first."""

    tasks: list[TaskSummary]
    count: int = Field(description="How many tasks are listed")
