"""How the server shows itself in a client: its website and its icons.

The icons are read from package data and sent inline as data: URIs, so that a client shows
them without fetching anything (the server may run where no URL of ours is reachable). The SVG
(any size) and the 128 px PNG are the same picture; the PNG is for clients that draw no SVG
(MCP asks every client to take PNG). `bundle/draw_icon.py` draws the PNGs.
"""

from __future__ import annotations

import base64
from functools import cache
from importlib import resources

from mcp.types import Icon

# pyproject.toml's Homepage (tests/packaging/test_package.py keeps them the same).
WEBSITE_URL = "https://github.com/hailuo-mcp/hailuo-mcp"
ASSETS = "assets"
# (file in hailuo_mcp/assets, MIME type, sizes as MCP spells them)
ICON_FILES = (
    ("icon.svg", "image/svg+xml", "any"),
    ("icon.png", "image/png", "128x128"),
)


def read_asset(name: str) -> bytes:
    """The bytes of one file of the package's assets (in a wheel, a zip or a checkout)."""
    return resources.files("hailuo_mcp").joinpath(ASSETS, name).read_bytes()


@cache
def _icons() -> tuple[Icon, ...]:
    return tuple(
        Icon(
            src=f"data:{mime};base64,{base64.b64encode(read_asset(name)).decode('ascii')}",
            mime_type=mime,
            sizes=[sizes],
        )
        for name, mime, sizes in ICON_FILES
    )


def server_icons() -> list[Icon]:
    """The icons of the server, its tools and its prompts (read once per process)."""
    return list(_icons())
