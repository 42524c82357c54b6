"""MCP Tasks for generate_video and get_task: the 2026 extension and the 2025-11-25 tasks.

`TasksExtension` goes to `MCPServer(extensions=[...])` and its `middleware` to
`server.middleware`; docs/TASKS.md says which client takes which path and what cancel means.
"""

from hailuo_mcp.mcp_tasks.extension import TasksExtension
from hailuo_mcp.mcp_tasks.wire import EXTENSION_ID

__all__ = ["EXTENSION_ID", "TasksExtension"]
