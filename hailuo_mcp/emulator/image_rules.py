"""The image rules of PiAPI's Hailuo page for ``input.image_url``: JPG/PNG, <= 20 MB,
300-4096 px, aspect ratio 2:5 to 5:2. "20 MB" is read as 20 MiB (inferred).

Pillow is imported inside ``check_image_bytes`` so importing the emulator stays cheap, and the
check runs in a worker thread because decoding headers is blocking work.
"""

from __future__ import annotations

import io
import logging

import httpx

logger = logging.getLogger(__name__)

# The client checks the same limits with its own constants, on purpose: two independent
# readings of the page, so a misreading on one side shows up as a disagreement in the tests.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MIN_SIDE_PX = 300
MAX_SIDE_PX = 4096
ALLOWED_FORMATS = ("JPEG", "PNG")


def check_image_bytes(data: bytes) -> str | None:
    """Return the first image rule ``data`` breaks, or ``None`` when it passes."""
    if len(data) > MAX_IMAGE_BYTES:
        return f"image size {len(data)} bytes is above the 20 MB maximum"
    from PIL import Image  # lazy: Pillow is only needed once an image arrives

    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format or "unknown"
            width, height = image.size
            image.verify()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # Pillow reports unreadable data as OSError (UnidentifiedImageError), truncated PNGs
        # as SyntaxError from verify(), and oversized canvases as DecompressionBombError.
        return f"image could not be read as JPG or PNG ({type(exc).__name__})"
    except Image.DecompressionBombWarning:
        # Only raised as an exception when warnings are errors (as in our tests).
        return "image could not be read: pixel count exceeds Pillow's safety limit"
    if image_format not in ALLOWED_FORMATS:
        return f"image format {image_format} is not supported (JPG or PNG only)"
    for side, size in (("width", width), ("height", height)):
        if size < MIN_SIDE_PX:
            return f"image {side} {size} px is below the {MIN_SIDE_PX} px minimum"
        if size > MAX_SIDE_PX:
            return f"image {side} {size} px is above the {MAX_SIDE_PX} px maximum"
    # Integer cross-multiplication keeps the 2:5 and 5:2 bounds exact (both inclusive).
    if width * 5 < height * 2 or width * 2 > height * 5:
        return f"image aspect ratio {width}:{height} is outside the 2:5 to 5:2 range"
    return None


async def fetch_image(client: httpx.AsyncClient, url: str) -> bytes | str:
    """Download ``url``; return its bytes, or a message saying why it could not be fetched.

    Reading stops one byte past the size limit, so a huge file never sits in memory.
    """
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                return f"image_url could not be fetched (HTTP {response.status_code})"
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_IMAGE_BYTES:
                    return f"image size is above the 20 MB maximum (more than {len(body)} bytes)"
            return bytes(body)
    except httpx.HTTPError as exc:
        logger.info("image fetch from %s failed: %r", url, exc)
        return f"image_url could not be fetched ({type(exc).__name__})"
