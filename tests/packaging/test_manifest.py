"""server.json against the official MCP registry schema, and in step with the package."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[2]


def load(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_server_json_is_valid_against_the_registry_schema() -> None:
    schema = load(ROOT / "tests" / "data" / "server.schema.json")
    errors = sorted(Draft7Validator(schema).iter_errors(load(ROOT / "server.json")), key=str)
    assert [e.message for e in errors] == []


def test_server_json_versions_match_the_package_and_readme_names_the_server() -> None:
    manifest = load(ROOT / "server.json")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    packages = manifest["packages"]
    assert isinstance(packages, list)
    assert manifest["version"] == project["version"] == packages[0]["version"]
    assert packages[0]["identifier"] == project["name"]
    assert f"mcp-name: {manifest['name']}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_server_json_declares_the_api_key_as_a_secret() -> None:
    env = load(ROOT / "server.json")["packages"][0]["environmentVariables"]  # type: ignore[index]
    key = next(v for v in env if v["name"] == "PIAPI_API_KEY")
    assert key["isSecret"] is True


def test_the_package_version_is_single_sourced_from_pyproject() -> None:
    from hailuo_mcp import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert __version__ == project["version"]
