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
    ("name", "value"),
    [("HAILUO_WAIT_SECONDS", "soon"), ("HAILUO_EXPECTED_SECONDS", "-5")],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value, "PIAPI_API_KEY": "sk-never-echoed"})
