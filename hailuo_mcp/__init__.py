"""hailuo-mcp: an MCP server for MiniMax Hailuo video generation through PiAPI."""

from importlib.metadata import PackageNotFoundError, version

try:
    # Single source: the version in pyproject.toml, as installed.
    __version__ = version("hailuo-mcp")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0.0.0+unknown"
