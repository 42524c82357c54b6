"""bundle/manifest.json (the MCP Bundle for Claude Desktop) in step with the server it starts.

`mcpb validate` and `mcpb pack` run in .ci/package.sh, which also installs the packed bundle
the way Claude Desktop does and generates a video through it. These tests keep what the
manifest says true: its tools, its settings and the variables they reach.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from PIL import Image

from hailuo_mcp.config import Settings
from hailuo_mcp.server import build_server

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundle"
MANIFEST: dict[str, Any] = json.loads((BUNDLE / "manifest.json").read_text(encoding="utf-8"))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
USER_CONFIG = re.compile(r"^\$\{user_config\.(\w+)\}$")


def server_tools(tmp_path: Path) -> list[Any]:
    settings = Settings.from_env(
        {"HAILUO_STATE_DIR": str(tmp_path / "state"), "HAILUO_OUTPUT_DIR": str(tmp_path / "v")}
    )

    async def read() -> list[Any]:
        async with Client(build_server(settings)) as client:
            return list((await client.list_tools()).tools)

    return anyio.run(read)


def launch_env(user_config: dict[str, Any]) -> dict[str, str]:
    """The server's environment from the manifest, as hosts substitute it (booleans as words)."""
    values = {key: option.get("default") for key, option in MANIFEST["user_config"].items()}
    values.update(user_config)
    env = {}
    for name, template in MANIFEST["server"]["mcp_config"]["env"].items():
        match = USER_CONFIG.match(template)
        assert match, f"{name}: {template}"
        value = values[match.group(1)]
        env[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


def test_the_manifest_lists_the_servers_tools_in_order_with_their_first_lines(
    tmp_path: Path,
) -> None:
    listed = [(t["name"], t["description"]) for t in MANIFEST["tools"]]
    served = [(t.name, (t.description or "").splitlines()[0]) for t in server_tools(tmp_path)]

    assert listed == served, "update bundle/manifest.json's tools to what the server lists"
    assert MANIFEST["prompts_generated"] is True  # the prompts come from prompts/list


def test_the_bundle_runs_uvx_on_this_version_as_a_python_server() -> None:
    server = MANIFEST["server"]

    assert MANIFEST["manifest_version"] == "0.3"
    assert MANIFEST["name"] == PROJECT["name"]
    assert server["type"] == "python"
    assert server["mcp_config"]["command"] == "uvx"
    assert server["mcp_config"]["args"] == [f"{PROJECT['name']}=={PROJECT['version']}"]
    assert (BUNDLE / server["entry_point"]).is_file()
    assert MANIFEST["compatibility"]["runtimes"]["python"] == PROJECT["requires-python"]
    assert set(MANIFEST["compatibility"]["platforms"]) == {"darwin", "win32", "linux"}


def test_the_key_is_a_secret_setting_and_the_folder_a_directory() -> None:
    options = MANIFEST["user_config"]

    assert set(options) == {"piapi_api_key", "output_dir", "demo"}
    assert options["piapi_api_key"]["sensitive"] is True
    assert options["output_dir"]["type"] == "directory"
    assert options["demo"]["type"] == "boolean"
    env = MANIFEST["server"]["mcp_config"]["env"]
    assert env == {
        "PIAPI_API_KEY": "${user_config.piapi_api_key}",
        "HAILUO_OUTPUT_DIR": "${user_config.output_dir}",
        "HAILUO_DEMO": "${user_config.demo}",
    }


def test_untouched_settings_give_the_servers_defaults_without_a_problem(tmp_path: Path) -> None:
    # Every option has a default: a host leaves an unset `${user_config.x}` as it is written.
    assert all("default" in option for option in MANIFEST["user_config"].values())
    settings = Settings.from_env(launch_env({}))

    assert settings.problems == ()
    assert settings.api_key is None and settings.demo is False
    assert settings.output_dir == Settings.from_env({}).output_dir


def test_the_users_settings_reach_the_server(tmp_path: Path) -> None:
    chosen = {"piapi_api_key": "sk-bundle-test", "output_dir": str(tmp_path), "demo": True}
    settings = Settings.from_env(launch_env(chosen))

    assert settings.problems == ()
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk-bundle-test"
    assert settings.output_dir == tmp_path and settings.demo is True


def test_the_bundle_icon_is_a_512_px_png() -> None:
    with Image.open(BUNDLE / MANIFEST["icon"]) as icon:
        assert icon.format == "PNG" and icon.size == (512, 512)


def test_the_entry_point_serves_the_installed_package() -> None:
    done = subprocess.run(
        [sys.executable, str(BUNDLE / "server" / "launch.py"), "--version"],
        cwd=BUNDLE,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"hailuo-mcp {PROJECT['version']}"


def test_the_bundle_tooling_is_pinned_and_kept_out_of_the_bundle() -> None:
    package = json.loads((BUNDLE / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((BUNDLE / "package-lock.json").read_text(encoding="utf-8"))
    pinned = package["dependencies"]["@anthropic-ai/mcpb"]

    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned)
    assert lock["packages"]["node_modules/@anthropic-ai/mcpb"]["version"] == pinned
    ignored = (BUNDLE / ".mcpbignore").read_text(encoding="utf-8").split()
    assert {"node_modules/", "package.json", "host.mjs", "draw_icon.py"} <= set(ignored)
