"""The bundle's entry point, for a host that starts `python server/launch.py` itself.

Claude Desktop runs manifest.json's `mcp_config` instead (`uvx hailuo-mcp==<version>`), which
installs the server on first use. This file serves the same server from a Python where
hailuo-mcp is installed (`pip install hailuo-mcp`), and otherwise says how to get it.
"""

import sys

try:
    from hailuo_mcp.cli import main
except ImportError:
    sys.stderr.write(
        "hailuo-mcp is not installed for this Python. Install uv "
        "(https://docs.astral.sh/uv/) so the bundle can run `uvx hailuo-mcp`, "
        "or run `pip install hailuo-mcp`.\n"
    )
    raise SystemExit(1) from None

raise SystemExit(main(sys.argv[1:]))
