"""Where start-up time goes: -X importtime of the bare server's imports and of ours.

Prints, as medians over fresh interpreters, the cumulative import time of the SDK's big pieces
and of our own modules, and the modules our server has loaded when it is built (as when it
answers `initialize`) that the bare server has not.

    .venv/bin/python bench/import_cost.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess

from _util import PYTHON, ROOT, machine

SDK = ["mcp", "mcp.server", "mcp.client", "mcp_types", "mcp.server.mcpserver", "pydantic"]
OURS = ["hailuo_mcp.cli", "hailuo_mcp.config", "hailuo_mcp.server", "hailuo_mcp.models"]
IMPORTS = "from mcp.server import MCPServer; import hailuo_mcp.cli, hailuo_mcp.server"
LIST_MODULES = "import sys; {build}; print(chr(10).join(sorted(sys.modules)))"
BARE_BUILD = f"sys.path.insert(0, {str(ROOT / 'bench')!r}); import bare_server"
OUR_BUILD = (
    "from hailuo_mcp.cli import _parser; _parser().parse_args([]); "
    "from hailuo_mcp.config import Settings; from hailuo_mcp.server import build_server; "
    "build_server(Settings.from_env({'PIAPI_API_KEY': 'x'}))"
)


def importtime(code: str) -> dict[str, int]:
    """Cumulative microseconds per module for one fresh interpreter running `code`."""
    err = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    ).stderr
    cumulative: dict[str, int] = {}
    for line in err.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[1].isdigit():
            cumulative[parts[2]] = int(parts[1])
    return cumulative


def modules(code: str) -> set[str]:
    """Module names loaded after running `code`."""
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def main() -> None:
    """Print the import costs and the module difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    samples = [importtime(IMPORTS) for _ in range(args.runs)]
    print(f"machine: {machine()}")
    print(f"cumulative import time, median of {args.runs} fresh interpreters:")
    for name in SDK + OURS:
        values = [s[name] / 1000 for s in samples if name in s]
        if values:
            print(f"  {name:24s} {statistics.median(values):7.1f} ms")
    bare = modules(LIST_MODULES.format(build=BARE_BUILD))
    ours = modules(LIST_MODULES.format(build=OUR_BUILD))
    print(f"modules: bare server {len(bare)}, ours {len(ours)}; ours only:")
    print("  " + " ".join(sorted(ours - bare)))
    print(f"mcp.client loaded by the bare server too: {'mcp.client' in bare}")


if __name__ == "__main__":
    main()
