"""The image rules of PiAPI's Hailuo page, and Pillow's measure of an image to check them on.

JPG or PNG, at most 20 MB, each side 300 to 4096 px, aspect ratio between 2:5 and 5:2. The
emulator keeps its own copy of these limits on purpose (emulator/image_rules.py): two readings
of the page, so a misreading on one side shows up as a disagreement in the tests.

Pillow reads the headers (`Image.open` is lazy); it is imported inside `read_header`, which
runs in a worker thread, so it stays off the server's start-up path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

from hailuo_mcp.errors import InputError

# "20MB" is read as 20 MiB, as the emulator reads it (inferred: the page does not say).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MIN_SIDE_PX = 300
MAX_SIDE_PX = 4096
# Pillow names a multi-picture JPEG (many camera files) "MPO": it is still a JPG file.
FORMAT_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png"}

_SHOWN_CHARS = 200
# Pillow's ways of saying "these bytes are not (all of) an image".
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error)


@dataclass(frozen=True)
class ImageFacts:
    """What was measured about an image."""

    format: str
    width: int
    height: int


def shown(text: str) -> str:
    """`text`, cut to a length an error message can carry."""
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def size_text(size: int) -> str:
    """A byte count as an error message shows it."""
    return f"{size:,} bytes ({size / 2**20:.2f} MB)"


def check_byte_size(size: int) -> None:
    """Refuse an image over 20 MB."""
    if size > MAX_IMAGE_BYTES:
        raise InputError(
            f"image_url: the image is {size_text(size)}; the maximum is 20 MB "
            f"({MAX_IMAGE_BYTES:,} bytes)"
        )


def check_facts(facts: ImageFacts) -> None:
    """Refuse an image whose format, sides or aspect ratio break PiAPI's image rules."""
    if facts.format not in FORMAT_EXTENSIONS:
        raise InputError(
            f"image_url: the image is in {facts.format} format; only JPG and PNG are accepted"
        )
    for size, word in ((facts.width, "wide"), (facts.height, "high")):
        if size < MIN_SIDE_PX:
            raise InputError(
                f"image_url: the image is {size} px {word}; the minimum is {MIN_SIDE_PX} px"
            )
        if size > MAX_SIDE_PX:
            raise InputError(
                f"image_url: the image is {size} px {word}; the maximum is {MAX_SIDE_PX} px"
            )
    width, height = facts.width, facts.height
    # Integer cross-multiplication keeps both bounds exact and inclusive.
    if width * 5 < height * 2 or width * 2 > height * 5:
        bound = "narrower than 2:5" if width * 5 < height * 2 else "wider than 5:2"
        raise InputError(
            f"image_url: the image is {width}x{height} px, {bound} (w/h = {width / height:.5f}); "
            "the aspect ratio w/h must be between 2:5 (0.4) and 5:2 (2.5)"
        )


def _not_an_image(reason: str) -> InputError:
    return InputError(f"image_url: the file is not a JPG or PNG image ({reason})")


def _pillow_says(exc: BaseException) -> str:
    return shown(str(exc) or type(exc).__name__)


def _too_many_pixels(exc: BaseException) -> InputError:
    return InputError(
        f"image_url: the image has too many pixels to open safely ({_pillow_says(exc)}); the "
        f"maximum is {MAX_SIDE_PX}x{MAX_SIDE_PX} px"
    )


def read_header(stream: IO[bytes], *, whole: bool, verify: bool = False) -> ImageFacts | None:
    """Measure an image with Pillow (blocking: run it in a worker thread).

    `whole` says the stream holds the whole file: an unreadable header then means "not an
    image". Otherwise it returns None, as the header may lie beyond the bytes we have.
    `verify` also checks the rest of the file (a truncated PNG is refused).
    """
    from PIL import Image, UnidentifiedImageError  # lazy: only needed once an image is given

    try:
        with Image.open(stream) as image:
            facts = ImageFacts(image.format or "unknown", image.width, image.height)
            if verify:
                try:
                    image.verify()
                except _UNREADABLE as exc:
                    # The header was fine: the rest of the file is cut short or damaged.
                    reason = f"it is truncated or damaged: {_pillow_says(exc)}"
                    raise _not_an_image(reason) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning is only raised (instead of printed to stderr) when warnings are errors.
        raise _too_many_pixels(exc) from exc
    except UnidentifiedImageError as exc:
        if whole:
            raise _not_an_image("its first bytes match no image format") from exc
        return None
    except _UNREADABLE as exc:
        if whole:
            raise _not_an_image(f"its header cannot be read: {_pillow_says(exc)}") from exc
        return None
    return facts


# Formats Hailuo refuses, by the extensions they are usually saved with.
_REFUSED_EXTENSIONS = ("gif", "webp", "bmp", "tif", "tiff", "heic", "avif", "svg")


def refused_extension(url: str) -> str | None:
    """The extension of the URL's file name when it names a format Hailuo refuses."""
    name = urlsplit(url).path.rsplit("/", 1)[-1].lower()
    extension = name.rsplit(".", 1)[-1] if "." in name else ""
    return extension if extension in _REFUSED_EXTENSIONS else None
