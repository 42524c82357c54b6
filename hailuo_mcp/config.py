"""Settings: one frozen value built from the environment once, then passed down.

A bad value never stops the server: a client would only see "connection closed". The variable
falls back to its default, and the problem is kept in `Settings.problems`, so the tools that
depend on it answer an error naming the variable and the rule.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from hailuo_mcp.errors import ConfigurationError

DEFAULT_BASE_URL = "https://api.piapi.ai"
DEFAULT_UPLOAD_URL = "https://upload.theapi.app/api/ephemeral_resource"
APP_NAME = "hailuo-mcp"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _default_output_dir() -> Path:
    # platformdirs is imported here, not at module level: only needed when the env is silent.
    import platformdirs

    return Path(platformdirs.user_videos_dir()) / APP_NAME


def _default_state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def absolute(path: Path) -> Path:
    """The path made absolute against the start-up folder (`~` expanded, `..` folded)."""
    return Path(os.path.abspath(path.expanduser()))


class ConfigProblem(BaseModel):
    """One environment variable whose value was refused, and the rule it broke."""

    # Built when a value is refused, not at every start.
    model_config = ConfigDict(frozen=True, defer_build=True)

    variable: str
    rule: str

    def __str__(self) -> str:
        return f"{self.variable} {self.rule}"


def _http_url_problem(url: str, *, path_allowed: bool) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if not path_allowed and parts.path not in ("", "/"):
        return (
            f"must be the API's base URL without a path (e.g. {DEFAULT_BASE_URL}), "
            f"not ending in {parts.path}"
        )
    if parts.query or parts.fragment:
        return "must not carry a query or fragment"
    return None


def _issuer_url_problem(url: str) -> str | None:
    """An OAuth URL (issuer, JWKS): https, or http on a loopback host only (a test issuer)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an https:// URL with a host"
    if parts.scheme == "http" and not _loopback_name(parts.hostname):
        # Keys fetched in clear could be swapped by anyone on the path.
        return "must be https:// (http:// only for a loopback host)"
    if parts.query or parts.fragment:
        return "must not carry a query or fragment"
    return None


def _loopback_name(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _words(raw: str) -> tuple[str, ...]:
    """Entries separated by commas and/or whitespace, in order, without repeats."""
    return tuple(dict.fromkeys(part for part in re.split(r"[,\s]+", raw) if part))


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
    demo_speed: float = Field(default=10.0, gt=0, le=10_000)
    image_dirs: tuple[Path, ...] = ()
    # A receiver of the user's own for PiAPI's webhooks (passed through as is)...
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # ...or ours: the URL at which PiAPI reaches this server, and where stdio mode listens.
    public_url: str | None = None
    webhook_listen: str = "127.0.0.1:8787"
    # [INF] in the contract: v2.3-fast is image-to-video only (3P sources agree); switchable.
    fast_requires_image: bool = True
    # [INF] 1 USD = 10,000,000 points, derived from the seed's task.
    points_per_usd: int = Field(default=10_000_000, gt=0)
    expand_prompt_default: bool = True
    connect_timeout: float = Field(default=10.0, gt=0, le=600)
    request_timeout: float = Field(default=30.0, gt=0, le=600)
    download_timeout: float = Field(default=300.0, gt=0, le=7200)
    progress_interval: float = Field(default=4.0, gt=0, le=5.0)
    resume_on_start: bool = True
    max_image_bytes_probe: int = Field(default=512 * 1024, gt=0)
    # Cost safety: caps (USD, None = no cap) and the price above which the user confirms.
    max_cost_per_call_usd: float | None = Field(default=None, ge=0)
    max_spend_per_day_usd: float | None = Field(default=None, ge=0)
    confirm_above_usd: float | None = Field(default=None, ge=0)
    # Streamable HTTP: bearer tokens that may call the server, and extra Host names to accept.
    http_tokens: tuple[SecretStr, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    # OAuth 2.1 resource-server mode (docs/HTTP.md): JWTs from this issuer, for this resource.
    oauth_issuer: str | None = None
    # Where the issuer's keys are; None: discovered from the issuer's metadata (RFC 8414).
    oauth_jwks_url: str | None = None
    # This server's public MCP URL (https://mcp.example.com/mcp): the audience tokens name.
    resource_url: str | None = None
    oauth_scopes: tuple[str, ...] = ()
    # Streamable HTTP without sessions, so any replica can answer any request.
    http_stateless: bool = False
    # The ledger in PostgreSQL (replicas share it) instead of SQLite under state_dir; it may
    # carry a password, so it is a secret.
    database_url: SecretStr | None = None
    # How long a replica's hold on a task lasts unless renewed (a dead replica's tasks are
    # taken over after about this long).
    lease_seconds: float = Field(default=20.0, ge=2, le=600)
    # Variables whose values were refused (they hold their defaults); see the module docstring.
    problems: tuple[ConfigProblem, ...] = ()

    @field_validator("output_dir", "state_dir")
    @classmethod
    def _absolute_path(cls, path: Path) -> Path:
        # Resolved once at start-up: a relative folder must not change meaning later, and a
        # file:// link to the saved video needs an absolute path.
        return absolute(path)

    @field_validator("image_dirs")
    @classmethod
    def _absolute_paths(cls, paths: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(absolute(path) for path in paths)

    @field_validator("base_url")
    @classmethod
    def _base_url_rule(cls, url: str) -> str:
        problem = _http_url_problem(url, path_allowed=False)
        if problem:
            raise ValueError(problem)
        return url.rstrip("/")

    @field_validator("webhook_listen")
    @classmethod
    def _listen_rule(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8787")
        return value

    @property
    def webhook_host_port(self) -> tuple[str, int]:
        """HAILUO_WEBHOOK_LISTEN split into host and port."""
        host, _, port = self.webhook_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("upload_url", "webhook_url", "public_url")
    @classmethod
    def _url_rule(cls, url: str | None) -> str | None:
        if url is not None and (problem := _http_url_problem(url, path_allowed=True)):
            raise ValueError(problem)
        return url

    @field_validator("oauth_issuer", "oauth_jwks_url")
    @classmethod
    def _oauth_url_rule(cls, url: str | None) -> str | None:
        if url is not None and (problem := _issuer_url_problem(url)):
            raise ValueError(problem)
        return url

    @field_validator("resource_url")
    @classmethod
    def _resource_url_rule(cls, url: str | None) -> str | None:
        if url is not None and (problem := _http_url_problem(url, path_allowed=True)):
            raise ValueError(problem)
        return url

    @property
    def oauth_enabled(self) -> bool:
        """Whether JWTs from HAILUO_OAUTH_ISSUER are accepted (it and HAILUO_RESOURCE_URL set)."""
        return self.oauth_issuer is not None and self.resource_url is not None

    @field_validator("database_url")
    @classmethod
    def _database_url_rule(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            scheme = urlsplit(url.get_secret_value()).scheme
            if scheme not in ("postgresql", "postgres"):
                raise ValueError("must be a postgresql:// URL (SQLite needs no URL)")
        return url

    @property
    def ledger_path(self) -> Path:
        """Where the SQLite task ledger lives."""
        return self.state_dir / "tasks.sqlite3"

    def check(self, variables: Iterable[str] | None = None) -> None:
        """Raise ConfigurationError if any of `variables` (default: all) was refused."""
        wanted = None if variables is None else set(variables)
        found = [p for p in self.problems if wanted is None or p.variable in wanted]
        if found:
            raise ConfigurationError(
                "The server's configuration has a bad value: "
                + "; ".join(str(p) for p in found)
                + '. Fix it in the "env" block of this server in your MCP client '
                "configuration and restart the server."
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from an environment mapping (os.environ when None)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        problems: list[ConfigProblem] = []

        def put(name: str, key: str) -> None:
            raw = env.get(name)
            if raw is not None and raw.strip() != "":
                values[key] = raw.strip()

        def flag(name: str, key: str) -> None:
            if name not in env:
                return
            raw = env[name].strip().lower()
            if raw in _TRUE or raw in _FALSE:
                values[key] = raw in _TRUE
            else:
                problems.append(ConfigProblem(variable=name, rule="must be 1/0, true/false"))

        for name, key in _ENV_NAMES.items():
            if key not in _NOT_PLAIN:
                put(name, key)
        flag("HAILUO_DEMO", "demo")
        flag("HAILUO_FAST_REQUIRES_IMAGE", "fast_requires_image")
        flag("HAILUO_EXPAND_PROMPT_DEFAULT", "expand_prompt_default")
        flag("HAILUO_RESUME", "resume_on_start")
        flag("HAILUO_HTTP_STATELESS", "http_stateless")
        output = env.get("HAILUO_OUTPUT_DIR", "").strip()
        state = env.get("HAILUO_STATE_DIR", "").strip()
        values["output_dir"] = Path(output) if output else _default_output_dir()
        values["state_dir"] = Path(state) if state else _default_state_dir()
        dirs = env.get("HAILUO_IMAGE_DIRS", "").strip()
        if dirs:
            values["image_dirs"] = tuple(
                Path(part) for part in dirs.split(os.pathsep) if part.strip()
            )
        else:
            values["image_dirs"] = (Path.home(),)
        tokens = [t.strip() for t in env.get("HAILUO_HTTP_TOKEN", "").split(",") if t.strip()]
        values["http_tokens"] = tuple(SecretStr(t) for t in tokens)
        hosts = [h.strip() for h in env.get("HAILUO_ALLOWED_HOSTS", "").split(",") if h.strip()]
        values["allowed_hosts"] = tuple(hosts)
        values["oauth_scopes"] = _words(env.get("HAILUO_OAUTH_SCOPES", ""))
        if "oauth_issuer" in values and "resource_url" not in values:
            # Without an audience no token could be checked: refused, never accepted unchecked.
            problems.append(
                ConfigProblem(
                    variable="HAILUO_RESOURCE_URL",
                    rule="must be set with HAILUO_OAUTH_ISSUER (this server's public /mcp URL)",
                )
            )
        return cls._validated(values, problems)

    @classmethod
    def _validated(cls, values: dict[str, object], problems: list[ConfigProblem]) -> Settings:
        """Validate; each refused value is dropped for its default and kept as a problem."""
        for _ in range(len(values) + 1):
            try:
                return cls.model_validate({**values, "problems": tuple(problems)})
            except ValidationError as exc:
                # Name the variable and the rule; never echo values (one of them is the key).
                for err in exc.errors(include_input=False, include_url=False):
                    key = str(err["loc"][0]) if err["loc"] else ""
                    if key not in values:
                        raise
                    values.pop(key)
                    rule = str(err["msg"]).removeprefix("Value error, ")
                    rule = rule.replace("Input should be", "must be")
                    problems.append(ConfigProblem(variable=_VARIABLE.get(key, key), rule=rule))
        raise AssertionError("unreachable: every round drops at least one value")


_ENV_NAMES = {
    "PIAPI_API_KEY": "api_key",
    "PIAPI_BASE_URL": "base_url",
    "PIAPI_UPLOAD_URL": "upload_url",
    "HAILUO_WAIT_SECONDS": "wait_seconds",
    "HAILUO_EXPECTED_SECONDS": "expected_seconds",
    "HAILUO_DEMO_SPEED": "demo_speed",
    "PIAPI_WEBHOOK_URL": "webhook_url",
    "PIAPI_WEBHOOK_SECRET": "webhook_secret",
    "HAILUO_PUBLIC_URL": "public_url",
    "HAILUO_MAX_COST_PER_CALL_USD": "max_cost_per_call_usd",
    "HAILUO_MAX_SPEND_PER_DAY_USD": "max_spend_per_day_usd",
    "HAILUO_CONFIRM_ABOVE_USD": "confirm_above_usd",
    "HAILUO_WEBHOOK_LISTEN": "webhook_listen",
    "HAILUO_POINTS_PER_USD": "points_per_usd",
    "HAILUO_REQUEST_TIMEOUT": "request_timeout",
    "HAILUO_CONNECT_TIMEOUT": "connect_timeout",
    "HAILUO_DOWNLOAD_TIMEOUT": "download_timeout",
    "HAILUO_OUTPUT_DIR": "output_dir",
    "HAILUO_STATE_DIR": "state_dir",
    "HAILUO_IMAGE_DIRS": "image_dirs",
    "HAILUO_DEMO": "demo",
    "HAILUO_FAST_REQUIRES_IMAGE": "fast_requires_image",
    "HAILUO_EXPAND_PROMPT_DEFAULT": "expand_prompt_default",
    "HAILUO_RESUME": "resume_on_start",
    "HAILUO_HTTP_TOKEN": "http_tokens",
    "HAILUO_ALLOWED_HOSTS": "allowed_hosts",
    "HAILUO_DATABASE_URL": "database_url",
    "HAILUO_LEASE_SECONDS": "lease_seconds",
    "HAILUO_OAUTH_ISSUER": "oauth_issuer",
    "HAILUO_OAUTH_JWKS_URL": "oauth_jwks_url",
    "HAILUO_RESOURCE_URL": "resource_url",
    "HAILUO_OAUTH_SCOPES": "oauth_scopes",
    "HAILUO_HTTP_STATELESS": "http_stateless",
}
# Read by hand in from_env (paths, flags, lists), not by `put`.
_NOT_PLAIN = {
    "output_dir",
    "state_dir",
    "image_dirs",
    "demo",
    "fast_requires_image",
    "expand_prompt_default",
    "resume_on_start",
    "http_tokens",
    "allowed_hosts",
    "oauth_scopes",
    "http_stateless",
}
_VARIABLE = {key: name for name, key in _ENV_NAMES.items()}
