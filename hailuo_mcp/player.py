"""The inline player (MCP Apps): the ``ui://hailuo/player.html`` view and its registration.

Hosts that render MCP Apps (`io.modelcontextprotocol/ui`, spec 2026-01-26) show
generate_video's and get_task's results in this view. It plays the *saved* file, whose bytes it
reads through the host in parts (`resources/read` of
``hailuo://videos/<task_id>.mp4/parts/<index>``, one after another), so it works after PiAPI's
URL expires and when the server is remote, and no message carries more than one part. While a
task runs it follows it with get_task through the host. It needs no network and no external
resource: the resource declares an empty CSP and the page adds its own, which allows only its
one script and one style sheet (by hash) and ``data:`` images and media. See docs/APPS.md.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources
from typing import Any

from mcp.server.apps import Apps, ResourceCsp

from hailuo_mcp.digests import PART_BYTES, part_count

PLAYER_URI = "ui://hailuo/player.html"
# Tool `_meta` binding a tool's results to the player (what `Apps.tool` stamps).
PLAYER_TOOL_META: dict[str, Any] = {"ui": {"resourceUri": PLAYER_URI}}
# Result `_meta` key of the hints only the player reads (sent to Apps clients only).
PLAYER_META_KEY = "io.github.hailuo-mcp/player"
# One part of a saved video (task_resource.py serves it), and its `_meta` key.
VIDEO_PART_URI = "hailuo://videos/{task_id}.mp4/parts/{index}"
PART_META_KEY = "io.github.hailuo-mcp/part"

_INLINE = {
    "script": re.compile(r"<script>(.*?)</script>", re.DOTALL),
    "style": re.compile(r"<style>(.*?)</style>", re.DOTALL),
}


def _hash_source(kind: str, html: str) -> str:
    """The CSP source allowing exactly the page's one inline ``kind`` block."""
    blocks = _INLINE[kind].findall(html)
    if len(blocks) != 1:
        raise ValueError(f"player.html must have exactly one inline <{kind}>, has {len(blocks)}")
    digest = hashlib.sha256(blocks[0].encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def page_csp(html: str) -> str:
    """The page's own policy: its script and style by hash, data: images and media, no network."""
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {_hash_source('script', html)}",
            f"style-src {_hash_source('style', html)}",
            "img-src data:",
            "media-src data:",
            "connect-src 'none'",
            "frame-src 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )


@functools.cache
def player_html() -> str:
    """The player's HTML, its Content-Security-Policy filled in (read once)."""
    template = resources.files("hailuo_mcp").joinpath("assets", "player.html").read_text("utf-8")
    return template.replace("__CSP__", page_csp(template), 1)


def build_apps() -> Apps:
    """The MCP Apps extension with the player registered (pass it to ``extensions=[...]``)."""
    apps = Apps()
    apps.add_html_resource(
        PLAYER_URI,
        player_html(),
        name="hailuo_player",
        title="Hailuo video player",
        description="Plays a saved Hailuo video and shows its prompt, model, duration, "
        "resolution, cost and status (live while the task runs).",
        # Nothing outside the page: no connect, resource, frame or base-uri domains.
        csp=ResourceCsp(),
        prefers_border=True,
    )
    return apps


def video_part_uri(task_id: str, index: int) -> str:
    """The resource URI of one part of a task's saved video."""
    return VIDEO_PART_URI.format(task_id=task_id, index=index)


def parts_hint(task_id: str, size: int) -> dict[str, Any]:
    """How a saved video of ``size`` bytes is read in parts: their URI template and count."""
    return {
        "uri_template": VIDEO_PART_URI.replace("{task_id}", task_id),
        "count": part_count(size),
        "part_bytes": PART_BYTES,
    }


def player_hints(task_id: str, video_uri: str, size: int, sha256: str) -> dict[str, Any]:
    """The result `_meta` the player reads: which resources to read, and how to check them."""
    return {
        PLAYER_META_KEY: {
            "task_id": task_id,
            "video_uri": video_uri,
            "mime_type": "video/mp4",
            "size": size,
            "sha256": sha256,
            "parts": parts_hint(task_id, size),
        }
    }
