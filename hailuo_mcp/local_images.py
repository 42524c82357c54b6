"""Local images: a path or `file://` URI read from an allowed folder, checked, and uploaded.

The image gate (images.py) sends a local image here: it is read only from a folder in
`Settings.image_dirs` (containment checked where the file really is, symlinks resolved), held
to the same rules as a URL (image_facts.py) and to the upload endpoint's 10 MB, then uploaded
through PiAPI's upload endpoint; the request carries the uploaded URL.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio

from hailuo_mcp.errors import HailuoError, InputError
from hailuo_mcp.image_facts import (
    FORMAT_EXTENSIONS,
    check_byte_size,
    check_facts,
    read_header,
    shown,
    size_text,
)

# PiAPI's upload endpoint takes at most 10 MB (read as MiB, like the emulator; documented).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class Uploader(Protocol):
    """Where a local image goes to get a URL PiAPI can fetch (PiAPIClient.upload)."""

    async def upload(self, file_name: str, data: bytes) -> str:
        """Upload `data` as `file_name`; return its URL."""
        ...


async def upload_local(
    uploader: Uploader, path: Path, label: str, image_dirs: Sequence[Path]
) -> str:
    """Check the local image at `path` and upload it; return the URL PiAPI can fetch."""
    name, data = await anyio.to_thread.run_sync(read_local, path, label, image_dirs)
    try:
        return await uploader.upload(name, data)
    except HailuoError as exc:
        # Keep the error's kind; add the way out that needs no upload.
        exc.message = (
            f"image_url: uploading the local image to PiAPI failed: {exc.message} You can "
            "also give a public http(s) URL of the image instead."
        )
        exc.args = (exc.message,)
        raise


def read_local(path: Path, label: str, image_dirs: Sequence[Path]) -> tuple[str, bytes]:
    """Check a local image in an allowed folder; return (upload file name, bytes). Blocking."""
    roots = [Path(root).expanduser().resolve() for root in image_dirs]
    if not roots:
        raise InputError(
            "image_url: reading local images is turned off (HAILUO_IMAGE_DIRS is empty); "
            "give an http(s) URL"
        )
    # resolve() follows every symlink, so containment is checked where the file really is,
    # and before touching it: a refused path tells nothing about what exists there.
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise InputError(f"image_url: cannot resolve {label} ({exc})") from exc
    if not any(real.is_relative_to(root) for root in roots):
        via = "" if real == path else f" (it resolves to {shown(str(real))})"
        raise InputError(
            f"image_url: {label} is outside the folders this server may read images from"
            f"{via}; allowed: {', '.join(str(r) for r in roots)}. Move the image into one "
            "of them or add its folder to HAILUO_IMAGE_DIRS."
        )
    # O_NOFOLLOW: the checked path cannot be swapped for a symlink; O_NONBLOCK: a FIFO
    # cannot hang the open.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError as exc:
        raise InputError(f"image_url: there is no file at {label}") from exc
    except OSError as exc:
        raise InputError(
            f"image_url: cannot read {label} ({exc.strerror or type(exc).__name__})"
        ) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InputError(f"image_url: {label} is not a regular file (a folder or a device?)")
    with os.fdopen(fd, "rb") as file:
        # The size first: nothing of a file too big to use is read.
        check_byte_size(info.st_size)
        facts = read_header(file, whole=True)
        assert facts is not None  # whole=True raises instead of returning None
        check_facts(facts)
        if info.st_size > MAX_UPLOAD_BYTES:
            raise InputError(
                f"image_url: the local file is {size_text(info.st_size)}; PiAPI's upload "
                f"endpoint takes at most 10 MB ({MAX_UPLOAD_BYTES:,} bytes). Make it smaller "
                "(e.g. save it as JPG) or give a public http(s) URL of it (up to 20 MB)."
            )
        file.seek(0)
        data = file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"image_url: {label} grew while it was read; try again")
    # The whole file is in hand: verify it, so a truncated image is refused before upload.
    read_header(io.BytesIO(data), whole=True, verify=True)
    return f"image.{FORMAT_EXTENSIONS[facts.format]}", data


def path_from_file_uri(uri: str) -> Path:
    """The local path a `file://` URI names; InputError when it names another machine."""
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InputError(
            f"image_url: {shown(uri)!r} names another machine ({parts.netloc}); a file:// URI "
            "must point to a file on this machine"
        )
    # url2pathname also decodes %-escapes (and drive letters on Windows).
    return Path(url2pathname(parts.path))
