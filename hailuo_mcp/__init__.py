"""hailuo-mcp: an MCP server for MiniMax Hailuo video generation through PiAPI."""

__version__ = "0.1.0"
