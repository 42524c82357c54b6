"""`python -m hailuo_mcp` runs the command line."""

from hailuo_mcp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
