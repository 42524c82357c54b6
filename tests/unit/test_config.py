"""Settings from an environment mapping: names, defaults, and a key that never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from hailuo_mcp.config import DEFAULT_BASE_URL, Settings
from hailuo_mcp.errors import ConfigurationError


def test_defaults_follow_the_documented_table(tmp_path: Path) -> None:
    settings = Settings.from_env({"HOME": str(tmp_path)})
    assert settings.api_key is None
    assert settings.base_url == DEFAULT_BASE_URL
    assert (settings.wait_seconds, settings.expected_seconds) == (50, 77)
    assert settings.demo is False
    assert settings.output_dir.name == "hailuo-mcp"


def test_every_variable_is_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "PIAPI_API_KEY": "sk-abc",
            "PIAPI_BASE_URL": "http://127.0.0.1:9",
            "PIAPI_UPLOAD_URL": "http://127.0.0.1:9/up",
            "HAILUO_OUTPUT_DIR": str(tmp_path / "out"),
            "HAILUO_STATE_DIR": str(tmp_path / "state"),
            "HAILUO_WAIT_SECONDS": "12",
            "HAILUO_EXPECTED_SECONDS": "40",
            "HAILUO_DEMO": "1",
            "HAILUO_CONNECT_TIMEOUT": "2.5",
            "HAILUO_IMAGE_DIRS": f"{tmp_path / 'a'}:{tmp_path / 'b'}",
        }
    )
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sk-abc"
    assert (settings.base_url, settings.upload_url) == (
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/up",
    )
    assert settings.output_dir == tmp_path / "out"
    assert settings.ledger_path == tmp_path / "state" / "tasks.sqlite3"
    assert (settings.wait_seconds, settings.expected_seconds, settings.demo) == (12, 40, True)
    assert settings.image_dirs == (tmp_path / "a", tmp_path / "b")
    assert settings.connect_timeout == 2.5


def test_the_key_never_appears_in_the_settings_repr() -> None:
    settings = Settings.from_env({"PIAPI_API_KEY": "sk-very-secret-value"})
    assert "sk-very-secret-value" not in repr(settings)
    assert "sk-very-secret-value" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("HAILUO_WAIT_SECONDS", "soon", "number"),
        ("HAILUO_WAIT_SECONDS", "abc", "number"),
        ("HAILUO_EXPECTED_SECONDS", "-5", "greater than 0"),
        ("HAILUO_DEMO", "maybe", "true/false"),
        ("PIAPI_BASE_URL", "https://api.piapi.ai/api/v1", "without a path"),
        ("PIAPI_BASE_URL", "api.piapi.ai", "http:// or https://"),
        ("PIAPI_UPLOAD_URL", "ftp://upload.example", "http:// or https://"),
    ],
)
def test_a_bad_value_is_kept_as_a_problem_naming_the_variable_and_the_rule(
    name: str, value: str, rule: str
) -> None:
    settings = Settings.from_env({name: value, "PIAPI_API_KEY": "sk-never-echoed"})
    assert [p.variable for p in settings.problems] == [name]
    with pytest.raises(ConfigurationError, match=name) as raised:
        settings.check()
    assert rule in raised.value.message
    assert "sk-never-echoed" not in raised.value.message
    # The refused value falls back to its default; other tools keep working.
    settings.check(["HAILUO_POINTS_PER_USD"])


def test_a_bad_value_never_echoes_the_value() -> None:
    settings = Settings.from_env({"HAILUO_WAIT_SECONDS": "sk-looks-like-a-secret"})
    with pytest.raises(ConfigurationError) as raised:
        settings.check()
    assert "sk-looks-like-a-secret" not in raised.value.message


def test_relative_folders_are_made_absolute_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env(
        {"HAILUO_OUTPUT_DIR": "myvideos", "HAILUO_STATE_DIR": "./state/../st", "HOME": "/x"}
    )
    assert settings.output_dir == tmp_path / "myvideos"
    assert settings.state_dir == tmp_path / "st"
    assert settings.output_dir.is_absolute()


def test_base_url_loses_its_trailing_slash() -> None:
    assert Settings.from_env({"PIAPI_BASE_URL": "http://127.0.0.1:9/"}).base_url == (
        "http://127.0.0.1:9"
    )


def test_http_tokens_and_allowed_hosts_are_lists() -> None:
    settings = Settings.from_env(
        {"HAILUO_HTTP_TOKEN": "tok-a, tok-b", "HAILUO_ALLOWED_HOSTS": "mcp.example.com,x.org"}
    )
    assert [t.get_secret_value() for t in settings.http_tokens] == ["tok-a", "tok-b"]
    assert settings.allowed_hosts == ("mcp.example.com", "x.org")
    assert "tok-a" not in repr(settings)
