"""Settings: one frozen value built from the environment once, then passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from hailuo_mcp.errors import ConfigurationError

DEFAULT_BASE_URL = "https://api.piapi.ai"
DEFAULT_UPLOAD_URL = "https://upload.theapi.app/api/ephemeral_resource"
APP_NAME = "hailuo-mcp"


def _default_output_dir() -> Path:
    # platformdirs is imported here, not at module level: only needed when the env is silent.
    import platformdirs

    return Path(platformdirs.user_videos_dir()) / APP_NAME


def _default_state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class Settings(BaseModel):
    """Everything the server needs to know, read once from the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None
    base_url: str = DEFAULT_BASE_URL
    upload_url: str = DEFAULT_UPLOAD_URL
    output_dir: Path
    state_dir: Path
    wait_seconds: float = Field(default=50.0, ge=0, le=3600)
    expected_seconds: float = Field(default=77.0, gt=0, le=3600)
    demo: bool = False
    demo_speed: float = Field(default=10.0, gt=0)
    image_dirs: tuple[Path, ...] = ()
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # [INF] in the contract: v2.3-fast is image-to-video only (3P sources agree); switchable.
    fast_requires_image: bool = True
    # [INF] 1 USD = 10,000,000 points, derived from the seed's task.
    points_per_usd: int = Field(default=10_000_000, gt=0)
    expand_prompt_default: bool = True
    connect_timeout: float = Field(default=10.0, gt=0)
    request_timeout: float = Field(default=30.0, gt=0)
    download_timeout: float = Field(default=300.0, gt=0)
    progress_interval: float = Field(default=4.0, gt=0, le=5.0)
    resume_on_start: bool = True
    max_image_bytes_probe: int = Field(default=512 * 1024, gt=0)

    @property
    def ledger_path(self) -> Path:
        """Where the SQLite task ledger lives."""
        return self.state_dir / "tasks.sqlite3"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from an environment mapping (os.environ when None)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}

        def put(name: str, key: str) -> None:
            raw = env.get(name)
            if raw is not None and raw.strip() != "":
                values[key] = raw.strip()

        put("PIAPI_API_KEY", "api_key")
        put("PIAPI_BASE_URL", "base_url")
        put("PIAPI_UPLOAD_URL", "upload_url")
        put("HAILUO_WAIT_SECONDS", "wait_seconds")
        put("HAILUO_EXPECTED_SECONDS", "expected_seconds")
        put("HAILUO_DEMO_SPEED", "demo_speed")
        put("PIAPI_WEBHOOK_URL", "webhook_url")
        put("PIAPI_WEBHOOK_SECRET", "webhook_secret")
        put("HAILUO_POINTS_PER_USD", "points_per_usd")
        put("HAILUO_REQUEST_TIMEOUT", "request_timeout")
        put("HAILUO_CONNECT_TIMEOUT", "connect_timeout")
        put("HAILUO_DOWNLOAD_TIMEOUT", "download_timeout")
        values["demo"] = _truthy(env.get("HAILUO_DEMO"))
        if "HAILUO_FAST_REQUIRES_IMAGE" in env:
            values["fast_requires_image"] = _truthy(env["HAILUO_FAST_REQUIRES_IMAGE"])
        if "HAILUO_EXPAND_PROMPT_DEFAULT" in env:
            values["expand_prompt_default"] = _truthy(env["HAILUO_EXPAND_PROMPT_DEFAULT"])
        if "HAILUO_RESUME" in env:
            values["resume_on_start"] = _truthy(env["HAILUO_RESUME"])
        output = env.get("HAILUO_OUTPUT_DIR", "").strip()
        state = env.get("HAILUO_STATE_DIR", "").strip()
        values["output_dir"] = Path(output).expanduser() if output else _default_output_dir()
        values["state_dir"] = Path(state).expanduser() if state else _default_state_dir()
        dirs = env.get("HAILUO_IMAGE_DIRS", "").strip()
        if dirs:
            values["image_dirs"] = tuple(
                Path(part).expanduser() for part in dirs.split(os.pathsep) if part.strip()
            )
        else:
            values["image_dirs"] = (Path.home(),)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            # Name the variable and the rule; never echo values (one of them is the key).
            problems = "; ".join(
                f"{_ENV_NAMES.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}"
                for err in exc.errors(include_input=False)
            )
            raise ConfigurationError(f"invalid configuration: {problems}") from None


_ENV_NAMES = {
    "api_key": "PIAPI_API_KEY",
    "base_url": "PIAPI_BASE_URL",
    "upload_url": "PIAPI_UPLOAD_URL",
    "wait_seconds": "HAILUO_WAIT_SECONDS",
    "expected_seconds": "HAILUO_EXPECTED_SECONDS",
    "demo_speed": "HAILUO_DEMO_SPEED",
    "webhook_url": "PIAPI_WEBHOOK_URL",
    "webhook_secret": "PIAPI_WEBHOOK_SECRET",
    "points_per_usd": "HAILUO_POINTS_PER_USD",
    "request_timeout": "HAILUO_REQUEST_TIMEOUT",
    "connect_timeout": "HAILUO_CONNECT_TIMEOUT",
    "download_timeout": "HAILUO_DOWNLOAD_TIMEOUT",
}
