"""Install the built wheel and bundle as users do, and drive each with a real MCP client.

Run by .ci/package.sh after it built dist/ (wheel, sdist, .mcpb) under --work. Every server
runs from a folder outside the checkout, with HOME in --work and no PYTHONPATH, so nothing of
the checkout can stand in for what was installed. The client is the Python SDK's, over stdio,
with the initialize handshake (the 2025-11-25 era that most hosts speak today).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
VERSION: str = PROJECT["version"]
MANIFEST: dict[str, Any] = json.loads((ROOT / "bundle" / "manifest.json").read_text("utf-8"))
TOOLS = {tool["name"] for tool in MANIFEST["tools"]}
PROMPTS = {"hailuo_prompt_guide", "storyboard"}
PACKAGE_DATA = [
    "hailuo_mcp/emulator/media/sample.mp4",
    "hailuo_mcp/assets/icon.svg",
    "hailuo_mcp/assets/icon.png",
    "hailuo_mcp/assets/player.html",
]
# The README's "Install" commands, run here verbatim (tests/packaging/test_package.py checks that
# they are the README's): as a user's shell runs them, from a folder of their own, HOME in --work.
README_UVX = "uvx hailuo-mcp"
README_PIPX = "pipx install hailuo-mcp"
README_PIP = "python3 -m venv ~/hailuo-mcp && ~/hailuo-mcp/bin/pip install hailuo-mcp"
README_COMMANDS = (README_UVX, README_PIPX, README_PIP)
DRIVE_TIMEOUT_S = 180  # the first uvx run installs the dependencies
DEMO_TIMEOUT_S = 180


class CheckFailed(Exception):
    """A packaging check did not hold."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def step(name: str, action: Callable[[], None]) -> None:
    """Run one check and print how long it took."""
    started = time.monotonic()
    action()
    print(f"  ok  {name} ({time.monotonic() - started:.1f} s)", flush=True)


class Checks:
    """The checks, sharing the built files and the environment they run in."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.dist = work / "dist"
        self.wheel = self._one("*.whl")
        self.sdist = self._one("*.tar.gz")
        self.bundle = self._one("*.mcpb")
        self.runs = work / "runs"  # every server's working folder: outside the checkout
        self.runs.mkdir(exist_ok=True)

    def _one(self, pattern: str) -> Path:
        found = sorted(self.dist.glob(pattern))
        check(len(found) == 1, f"expected one {pattern} in {self.dist}, found {found}")
        return found[0]

    def env(self, **extra: str) -> dict[str, str]:
        """A user's environment (certificates, proxies, PATH, this run's caches and indexes)
        with a HOME of its own and nothing that could point Python or the server elsewhere."""
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PYTHON", "VIRTUAL_ENV", "HAILUO_", "PIAPI_")) and k != "HOME"
        }
        return {**keep, "HOME": str(self.work / "home"), **extra}

    def run(self, command: Sequence[str], **extra: str) -> str:
        """Run a command outside the checkout; its stdout, or a failure showing its output."""
        done = subprocess.run(
            list(command),
            cwd=self.runs,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise CheckFailed(
                f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    # -- what was built ------------------------------------------------------------------

    def built_files(self) -> None:
        check(self.wheel.name == f"hailuo_mcp-{VERSION}-py3-none-any.whl", self.wheel.name)
        check(self.sdist.name == f"hailuo_mcp-{VERSION}.tar.gz", self.sdist.name)
        with zipfile.ZipFile(self.wheel) as wheel:
            names = set(wheel.namelist())
        missing = [n for n in PACKAGE_DATA if n not in names]
        check(not missing, f"package data missing from the wheel: {missing}")
        check(f"hailuo_mcp-{VERSION}.dist-info/licenses/LICENSE" in names, "no LICENSE")
        tops = {n.split("/")[0] for n in names}
        check(tops == {"hailuo_mcp", f"hailuo_mcp-{VERSION}.dist-info"}, f"top level: {tops}")
        with tarfile.open(self.sdist) as sdist:
            inside = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
        wanted = {"pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", *PACKAGE_DATA}
        check(wanted <= inside, f"missing from the sdist: {sorted(wanted - inside)}")
        with zipfile.ZipFile(self.bundle) as bundle:
            packed = set(bundle.namelist())
        check(packed == {"manifest.json", "icon.png", "server/launch.py"}, f"bundle: {packed}")

    # -- one client session ----------------------------------------------------------------

    def drive(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        generate: Path | None = None,
    ) -> None:
        """Start the server with `command`, check what it answers; generate a video if asked."""
        log = self.work / f"{name}.stderr.log"
        try:
            anyio.run(self._session, list(command), dict(env or self.env()), log, generate)
        except Exception as exc:
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
            message = f"{name}: {type(exc).__name__}: {exc}\n--- server stderr:\n{tail}"
            raise CheckFailed(message) from exc

    async def _session(
        self, command: list[str], env: dict[str, str], log: Path, generate: Path | None
    ) -> None:
        params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=self.runs)
        with log.open("w") as errlog, anyio.fail_after(DRIVE_TIMEOUT_S):
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                await check_surface(client)
                if generate is not None:
                    await check_generation(client, generate, self.sample_size())

    def sample_size(self) -> int:
        with zipfile.ZipFile(self.wheel) as wheel:
            return wheel.getinfo(PACKAGE_DATA[0]).file_size

    def demo(self, name: str, command: Sequence[str]) -> None:
        """`hailuo-mcp demo --speed 50`: one generation on the emulator the package carries."""
        home = self.work / f"demo-{name}"
        out = self.run(
            [*command, "demo", "--speed", "50"],
            HAILUO_OUTPUT_DIR=str(home / "videos"),
            HAILUO_STATE_DIR=str(home / "state"),
        )
        saved = re.search(r"^Saved: (.+)$", out, re.MULTILINE)
        check(saved is not None, f"demo printed no saved file:\n{out}")
        assert saved is not None
        video = Path(saved.group(1))
        check(video.is_relative_to(home / "videos"), f"demo saved {video}")
        check_mp4(video, self.sample_size())

    # -- the install routes ---------------------------------------------------------------

    def uvx_wheel(self) -> None:
        command = ["uvx", "--from", str(self.wheel), "hailuo-mcp"]
        self.drive("uvx-wheel", command)
        self.demo("uvx-wheel", command)

    def installed_from_this_wheel(self, python: Path) -> None:
        """The package `python` imports is the built wheel's, file for file (RECORD hashes)."""
        with zipfile.ZipFile(self.wheel) as wheel:
            record = wheel.read(f"hailuo_mcp-{VERSION}.dist-info/RECORD").decode()
        ours = {line for line in record.splitlines() if line.startswith("hailuo_mcp/")}
        installed = set(self.run([str(python), "-c", RECORD]).splitlines())
        check(ours <= installed, f"not the built wheel: {sorted(ours - installed)[:3]}")
        where = self.run([str(python), "-c", WHERE]).strip()
        check(Path(where).is_relative_to(python.parent.parent), f"imported from {where}")

    def uvx_readme(self) -> None:
        # hailuo-mcp comes from dist/ (UV_FIND_LINKS), its dependencies from PyPI.
        self.drive("uvx", shlex.split(README_UVX))

    def pipx_readme(self) -> None:
        self.run(["bash", "-c", README_PIPX])
        # As a client configured with "command": "hailuo-mcp" finds it: on PATH.
        bin_dir = os.environ["PIPX_BIN_DIR"]
        env = self.env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        self.drive("pipx", ["hailuo-mcp"], env)

    def pip_readme(self) -> None:
        """A fresh venv with the wheel, `pip install`ed; then the bundle's entry point with it."""
        self.run(["bash", "-c", README_PIP])
        venv = self.work / "home" / "hailuo-mcp"
        self.installed_from_this_wheel(venv / "bin" / "python")
        version = self.run([str(venv / "bin" / "hailuo-mcp"), "--version"]).strip()
        check(version == f"hailuo-mcp {VERSION}", version)
        self.drive("pip", [str(venv / "bin" / "hailuo-mcp")])
        self.demo("pip", [str(venv / "bin" / "hailuo-mcp")])
        # The bundle's entry point, for a host that runs it with a Python that has hailuo-mcp.
        launcher = self.work / "installed-bundle" / "server" / "launch.py"
        self.drive("launch.py", [str(venv / "bin" / "python"), str(launcher)])

    def bundle_as_claude_desktop(self) -> None:
        """Unpack the .mcpb and build its launch command with the hosts' own code, then run it."""
        installed = self.work / "installed-bundle"
        videos = self.work / "bundle-videos"
        settings = {"demo": True, "output_dir": str(videos)}
        out = subprocess.run(
            ["node", str(ROOT / "bundle" / "host.mjs"), str(self.bundle), str(installed)]
            + [json.dumps(settings)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        config = json.loads(out)
        check(config["command"] == "uvx", f"{config}")
        check(config["args"] == [f"hailuo-mcp=={VERSION}"], f"{config}")
        check(config["env"]["HAILUO_DEMO"] == "true", f"{config}")
        check(config["env"]["PIAPI_API_KEY"] == "", "an unset key must reach the server empty")
        # The demo clock 50 times faster than the default, for CI's time only.
        env = self.env(**config["env"], HAILUO_DEMO_SPEED="50")
        self.drive("bundle", [config["command"], *config["args"]], env, generate=videos)


WHERE = "import hailuo_mcp; print(hailuo_mcp.__file__)"
RECORD = "import importlib.metadata as m; print(m.distribution('hailuo-mcp').read_text('RECORD'))"


async def check_surface(client: Client) -> None:
    """serverInfo (name, version, website, icons), the tools, the prompts, one tool call."""
    check(client.protocol_version == "2025-11-25", client.protocol_version)
    info = client.server_info
    check(info is not None, "initialize gave no serverInfo")
    assert info is not None
    check(info.name == "hailuo-mcp", f"serverInfo.name {info.name}")
    check(info.version == VERSION, f"serverInfo.version {info.version} != {VERSION}")
    check(info.website_url == PROJECT["urls"]["Homepage"], f"websiteUrl {info.website_url}")
    check_icons(info.icons, "the server")

    tools = (await client.list_tools()).tools
    check({t.name for t in tools} == TOOLS, f"tools {[t.name for t in tools]}")
    for tool in tools:
        check(bool(tool.title), f"{tool.name} has no title")
        check_icons(tool.icons, tool.name)
    prompts = (await client.list_prompts()).prompts
    check({p.name for p in prompts} == PROMPTS, f"prompts {[p.name for p in prompts]}")
    board = await client.get_prompt("storyboard", {"idea": "a paper boat", "shots": "3"})
    text = " ".join(m.content.text for m in board.messages if isinstance(m.content, TextContent))
    check("3 shots" in text and "a paper boat" in text, text[:200])
    price = await client.call_tool("estimate_cost", {"duration": 6})
    check(not price.is_error, f"estimate_cost: {price}")


async def check_generation(client: Client, folder: Path, size: int) -> None:
    """generate_video saves a complete MP4 in `folder`."""
    result = await client.call_tool("generate_video", {"prompt": "a paper boat on a puddle"})
    data = result.structured_content or {}
    check(not result.is_error and data.get("done") is True, f"generate_video: {result}")
    video = Path(str(data.get("video_path")))
    check(video.is_file() and video.is_relative_to(folder), f"saved at {video}")
    check_mp4(video, size)


def check_icons(icons: Sequence[Any] | None, owner: str) -> None:
    """An SVG and a PNG, each inline as a data: URI that decodes to that format."""
    kinds = {}
    for icon in icons or []:
        match = re.fullmatch(r"data:([\w/+.-]+);base64,(.+)", icon.src)
        check(match is not None, f"{owner}: icon src is not a base64 data: URI")
        assert match is not None
        kinds[match.group(1)] = base64.b64decode(match.group(2))
    check(set(kinds) == {"image/svg+xml", "image/png"}, f"{owner}: icons {sorted(kinds)}")
    check(kinds["image/png"].startswith(b"\x89PNG\r\n\x1a\n"), f"{owner}: not a PNG")
    check(b"<svg" in kinds["image/svg+xml"], f"{owner}: not an SVG")


def check_mp4(video: Path, size: int) -> None:
    """A complete MP4: the emulator's sample, byte count and all."""
    head = video.read_bytes()[:12]
    check(head[4:8] == b"ftyp", f"{video} is not an MP4")
    check(video.stat().st_size == size, f"{video}: {video.stat().st_size} bytes, not {size}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="where package.sh built dist/")
    args = parser.parse_args(argv)
    checks = Checks(args.work.resolve())
    try:
        step("wheel, sdist and bundle contents", checks.built_files)
        step("the .mcpb as Claude Desktop reads it, a generation", checks.bundle_as_claude_desktop)
        step("uvx --from <wheel> hailuo-mcp, demo", checks.uvx_wheel)
        step(f"{README_UVX} (README)", checks.uvx_readme)
        step(f"{README_PIPX} (README)", checks.pipx_readme)
        step(f"{README_PIP} (README), demo, launch.py", checks.pip_readme)
    except CheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
