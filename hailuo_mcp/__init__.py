"""hailuo-mcp: an MCP server for MiniMax Hailuo video generation through PiAPI."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`__version__`, read from the installed package's metadata on first use.

    Lazily, so that `cli.main` has paused the cyclic GC before importlib.metadata (~60 ms of
    imports) is paid for; the single source is still the version in pyproject.toml.
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("hailuo-mcp")
    except PackageNotFoundError:  # run from a checkout that was never installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
