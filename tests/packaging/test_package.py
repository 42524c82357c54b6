"""The package as released: one version everywhere, its addresses, its icons, its changelog.

Building and installing the wheel, the sdist and the bundle is .ci/package.sh's job (it drives
each install with a real client); these tests keep the sources those builds read in step.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from PIL import Image, ImageChops, ImageStat

from hailuo_mcp import __version__
from hailuo_mcp.branding import WEBSITE_URL, read_asset
from hailuo_mcp.config import Settings
from hailuo_mcp.server import build_server

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
VERSION = PROJECT["version"]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def surface(tmp_path: Path) -> tuple[Any, list[Any], list[Any]]:
    """serverInfo, the tools and the prompts, as a client reads them after initialize."""
    settings = Settings.from_env(
        {"HAILUO_STATE_DIR": str(tmp_path / "state"), "HAILUO_OUTPUT_DIR": str(tmp_path / "v")}
    )

    async def read() -> tuple[Any, list[Any], list[Any]]:
        async with Client(build_server(settings), mode="legacy") as client:
            tools = (await client.list_tools()).tools
            prompts = (await client.list_prompts()).prompts
            return client.server_info, tools, prompts

    return anyio.run(read)


def test_one_version_from_pyproject_to_server_info_server_json_bundle_and_changelog(
    tmp_path: Path,
) -> None:
    info, _, _ = surface(tmp_path)
    registry = load_json(ROOT / "server.json")
    bundle = load_json(ROOT / "bundle" / "manifest.json")
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    first = re.search(r"^## \[(\d+\.\d+\.\d+[^\]]*)\]", changelog, re.MULTILINE)

    assert __version__ == VERSION
    assert info.version == VERSION
    assert registry["version"] == VERSION
    assert [p["version"] for p in registry["packages"]] == [VERSION]
    assert bundle["version"] == VERSION
    assert bundle["server"]["mcp_config"]["args"] == [f"hailuo-mcp=={VERSION}"]
    assert first is not None and first.group(1) == VERSION


def test_project_urls_website_url_server_json_and_bundle_name_one_home(tmp_path: Path) -> None:
    urls = PROJECT["urls"]
    info, _, _ = surface(tmp_path)
    registry = load_json(ROOT / "server.json")
    bundle = load_json(ROOT / "bundle" / "manifest.json")

    assert set(urls) == {"Homepage", "Repository", "Issues", "Changelog"}
    assert urls["Homepage"] == urls["Repository"] == WEBSITE_URL == info.website_url
    assert registry["repository"]["url"] == WEBSITE_URL
    assert bundle["homepage"] == bundle["repository"]["url"] == WEBSITE_URL
    assert urls["Issues"] == bundle["support"] == f"{WEBSITE_URL}/issues"
    assert urls["Changelog"] == f"{WEBSITE_URL}/blob/main/CHANGELOG.md"
    assert (ROOT / "CHANGELOG.md").is_file()


def test_the_release_carries_its_licence_and_the_readme_names_the_registry_entry() -> None:
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"<!-- mcp-name: {load_json(ROOT / 'server.json')['name']} -->" in readme


def test_package_data_is_tracked_so_a_fresh_clone_builds_it_into_the_wheel() -> None:
    wanted = [
        "hailuo_mcp/emulator/media/sample.mp4",
        "hailuo_mcp/assets/icon.svg",
        "hailuo_mcp/assets/icon.png",
    ]
    tracked = subprocess.run(
        ["git", "ls-files", "--", *wanted], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(tracked) == sorted(wanted)
    assert PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["hailuo_mcp"]


def test_the_server_every_tool_and_every_prompt_show_the_icons_inline(tmp_path: Path) -> None:
    info, tools, prompts = surface(tmp_path)
    expected = {
        "image/svg+xml": read_asset("icon.svg"),
        "image/png": read_asset("icon.png"),
    }

    for owner in [info, *tools, *prompts]:
        icons = {icon.mime_type: icon for icon in owner.icons or []}
        assert set(icons) == set(expected), owner.name
        for mime, data in expected.items():
            prefix = f"data:{mime};base64,"
            assert icons[mime].src.startswith(prefix)
            assert base64.b64decode(icons[mime].src.removeprefix(prefix)) == data
        assert icons["image/png"].sizes == ["128x128"]
        assert icons["image/svg+xml"].sizes == ["any"]


def test_every_tool_has_a_title(tmp_path: Path) -> None:
    _, tools, _ = surface(tmp_path)

    assert tools
    assert [t.name for t in tools if not t.title] == []


def draw_icon_module() -> Any:
    spec = importlib.util.spec_from_file_location("draw_icon", ROOT / "bundle" / "draw_icon.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("path", "size"),
    [(ROOT / "hailuo_mcp" / "assets" / "icon.png", 128), (ROOT / "bundle" / "icon.png", 512)],
)
def test_the_pngs_are_what_draw_icon_draws(path: Path, size: int) -> None:
    drawn = draw_icon_module().draw().resize((size, size), Image.Resampling.LANCZOS)
    committed = Image.open(io.BytesIO(path.read_bytes()))

    assert committed.format == "PNG" and committed.size == (size, size)
    # Near, not equal: another Pillow may round a few edge pixels differently.
    difference = ImageStat.Stat(ImageChops.difference(drawn, committed.convert("RGBA"))).mean
    assert max(difference) < 1.0, f"{path}: rerun bundle/draw_icon.py ({difference})"


def test_the_svg_is_the_same_square_picture() -> None:
    svg = ET.fromstring(read_asset("icon.svg"))

    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert svg.get("viewBox") == "0 0 512 512"
    module = draw_icon_module()
    # The numbers draw_icon.py draws from are the SVG's own.
    text = read_asset("icon.svg").decode()
    assert f'rx="{module.CORNER}"' in text
    assert "M{} {} L{} {} L{} {} Z".format(*sum(module.TRIANGLE, ())) in text
    assert f'stroke-width="{module.TRIANGLE_STROKE}"' in text
    assert f'stroke-width="{module.WAVE_STROKE}"' in text


def package_check_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "package_check", ROOT / ".ci" / "package_check.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_install_commands_are_the_ones_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]

    assert commands == list(package_check_module().README_COMMANDS)
    assert f"`hailuo-mcp-{VERSION}.mcpb`" in section
    assert f"`uvx hailuo-mcp=={VERSION}`" in section
    assert "`bash .ci/package.sh`" in section
    assert "bash .ci/package.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
