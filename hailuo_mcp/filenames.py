"""File names for saved videos: readable by default, the user's own when asked, always safe.

A user's name is reduced to a plain file name inside HAILUO_OUTPUT_DIR (no folders, no `..`, no
control characters, no names Windows reserves, at most 120 characters, ending in .mp4), and a
name already taken gets a numbered suffix: a saved video is never overwritten.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from pathlib import Path

MAX_NAME_CHARS = 120
_SLUG_CHARS = 40
_UNSAFE = re.compile(r"[^\w .()+,=@-]+")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {
    f"{d}{n}" for d in ("com", "lpt") for n in "123456789"
}


def slug(text: str, limit: int = _SLUG_CHARS) -> str:
    """Lower-case words joined by dashes, ASCII only (for the default name)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    out = ""
    for word in words:
        candidate = f"{out}-{word}" if out else word
        if len(candidate) > limit:
            break
        out = candidate
    return out or "video"


def default_name(prompt: str | None, task_id: str, created_at: float) -> str:
    """E.g. 2026-12-01-a-red-fox-running-through-3f9a1c.mp4: date, prompt, a short id."""
    day = datetime.fromtimestamp(created_at).strftime("%Y-%m-%d")
    short = re.sub(r"[^A-Za-z0-9]", "", task_id)[:6] or "task"
    return f"{day}-{slug(prompt or '')}-{short}.mp4"


def safe_name(wanted: str) -> str | None:
    """The user's file name made safe, or None when nothing usable is left."""
    name = wanted.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    name = _UNSAFE.sub("-", name).strip(" .-")
    if name.lower().endswith(".mp4"):
        name = name[:-4].rstrip(" .-")
    if not name:
        return None
    if name.split(".", 1)[0].lower() in _WINDOWS_RESERVED:
        name = f"_{name}"
    return name[: MAX_NAME_CHARS - 4] + ".mp4"


def free_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `name (2).mp4`, `name (3).mp4`… if it is taken."""
    candidate = folder / name
    stem = name[:-4] if name.endswith(".mp4") else name
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem[: MAX_NAME_CHARS - 12]} ({number}).mp4"
        number += 1
    return candidate
