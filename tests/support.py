"""Helpers shared by test files: test emulators' key and clocks, settings, images, results."""

from __future__ import annotations

import io
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import httpx
from mcp.types import CallToolResult, TextContent

from hailuo_mcp.config import Settings
from hailuo_mcp.emulator import Emulator, EmulatorConfig
from hailuo_mcp.tool_results import ERROR_META_KEY

KEY = "sk-test-7f3a9c1e5b2d4a6f8e0c"  # the one API key every test emulator expects

MANUAL: Final = "manual"
FROZEN_SPEED = 1e-6
FAST = 100.0
Clock = Literal["manual"] | float
BASE_CONFIG = EmulatorConfig(api_key=KEY, speed=FROZEN_SPEED, fixed_durations=(1.0, 76.0), seed=7)


class MakeEmulator(Protocol):
    """Start an emulator at this clock with these ``EmulatorConfig`` changes, until teardown."""

    def __call__(self, *, clock: Clock, **overrides: Any) -> Emulator: ...


def config_for(clock: Clock, **overrides: Any) -> EmulatorConfig:
    """``BASE_CONFIG`` with ``clock`` as its speed and ``overrides`` applied."""
    speed = FROZEN_SPEED if clock == MANUAL else float(clock)
    return replace(BASE_CONFIG, speed=speed, **overrides)


def client_for(emulator: Emulator, tls_context: ssl.SSLContext) -> httpx.Client:
    """A plain HTTP client for ``emulator``, sending the expected ``x-api-key``."""
    return httpx.Client(
        base_url=emulator.url,
        headers={"x-api-key": KEY},
        timeout=5.0,
        trust_env=False,
        verify=tls_context,
    )


def make_settings(emulator: Emulator, tmp_path: Path, **env: str) -> Settings:
    """Settings aimed at `emulator`, with the ledger and videos under `tmp_path`.

    HAILUO_EXPECTED_SECONDS is 77 s divided by the emulator's speed, as the demo does.
    """
    speed = emulator.config.speed
    values = {
        "PIAPI_API_KEY": KEY,
        "PIAPI_BASE_URL": emulator.url,
        "PIAPI_UPLOAD_URL": emulator.upload_url,
        "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
        "HAILUO_EXPECTED_SECONDS": str(77 / speed),
        "HAILUO_WAIT_SECONDS": "20",
        "HAILUO_IMAGE_DIRS": str(tmp_path),
    }
    values.update(env)
    return Settings.from_env(values)


def sample_png(width: int, height: int) -> bytes:
    """A real PNG of the given size."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def text_of(result: CallToolResult) -> str:
    """The text a model reads of a tool result."""
    return " ".join(b.text for b in result.content if isinstance(b, TextContent))


def error_of(result: CallToolResult) -> dict[str, str]:
    """The error a result reports, after checking that its text says the kind and task id.

    The kind and task id are read from `_meta`; a model that sees only text reads them in it.
    """
    assert result.is_error, text_of(result)
    error: dict[str, str] = (result.meta or {})[ERROR_META_KEY]
    text = text_of(result)
    assert f"({error['error_kind']})" in text, text
    if error.get("task_id"):
        assert error["task_id"] in text, text
    return error
