"""The poster frame: one frame from the middle of a saved video, as a small JPEG.

A model cannot watch an MP4 but it can look at an image, so a result about a saved video
carries this frame. It is made lazily, the first time a result needs it, and cached beside the
video as ``<name>.poster.jpg`` (written to a temp file, then renamed: invariant 5). Decoding
needs PyAV, the optional ``preview`` extra (``pip install 'hailuo-mcp[preview]'``); without it,
or for a file PyAV cannot read, there is no poster and nothing else changes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream
    from PIL import Image

logger = logging.getLogger(__name__)

MAX_BYTES = 100_000
POSTER_SUFFIX = ".poster.jpg"
# Tried in turn until the JPEG fits in MAX_BYTES; only then is the frame made smaller.
_QUALITIES = (85, 75, 65, 55, 45, 35)
_SHRINK = 0.75
_MIN_SIDE = 64
# The frame's time, kept in the JPEG's comment so a cached poster still says it.
_COMMENT = "hailuo-mcp poster frame at {:.3f} s"
_COMMENT_TIME = re.compile(rb"at (\d+(?:\.\d+)?) s")


@dataclass(frozen=True)
class Poster:
    """One frame of a video as a JPEG, and where it is cached."""

    path: Path
    jpeg: bytes
    width: int
    height: int
    at_seconds: float | None


def preview_available() -> bool:
    """Whether PyAV (the ``preview`` extra) is installed."""
    return find_spec("av") is not None


def poster_path(video: Path) -> Path:
    """Where the poster of ``video`` is cached: ``clip.mp4`` → ``clip.poster.jpg``."""
    return video.with_name(video.stem + POSTER_SUFFIX)


async def poster_for(video: Path) -> Poster | None:
    """The poster of a saved video: cached, else extracted (in a worker thread) and cached.

    None when PyAV is missing or the video cannot be decoded; the reason is logged. The server
    makes its posters through poster_jobs.PosterMaker, which bounds how many run at once.
    """
    return await anyio.to_thread.run_sync(load_or_make, video)


def load_or_make(video: Path) -> Poster | None:
    """`poster_for`, blocking: the fresh cached poster, or a new one written beside the video."""
    return cached_poster(video) or make_poster(video)


def make_poster(video: Path) -> Poster | None:
    """Extract the poster of `video` and cache it beside the video (blocking)."""
    if not preview_available():
        logger.debug("no poster for %s: PyAV is not installed (hailuo-mcp[preview])", video)
        return None
    made = extract(video)
    if made is None:
        return None
    jpeg, at_seconds = made
    path = poster_path(video)
    try:
        _write_atomically(path, jpeg)
    except OSError as exc:
        # The frame still goes to the model; only the cache is missing.
        logger.warning("poster of %s not cached at %s: %s", video.name, path, exc.strerror)
    from PIL import Image  # imported on first use: not a cost of the server's start

    with Image.open(io.BytesIO(jpeg)) as image:
        width, height = image.size
    return Poster(path=path, jpeg=jpeg, width=width, height=height, at_seconds=at_seconds)


def extract(video: Path) -> tuple[bytes, float] | None:
    """The JPEG of the frame at the middle of ``video`` and its time, or None if unreadable."""
    import av  # the optional extra: imported only when there is a video to decode

    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                logger.warning("no poster for %s: it has no video stream", video.name)
                return None
            stream = container.streams.video[0]
            frame = _middle_frame(container, stream)
            if frame is None:
                logger.warning("no poster for %s: no frame could be decoded", video.name)
                return None
            # To the millisecond, as the cached JPEG's comment keeps it: both read the same.
            at_seconds = round(float(frame.time or 0.0), 3)
            # PyAV's stub leaves to_image untyped; it returns a PIL image.
            image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    except (av.FFmpegError, OSError, ValueError) as exc:
        logger.warning("no poster for %s: %s", video.name, exc)
        return None
    return encode(image, comment=_COMMENT.format(at_seconds)), at_seconds


def _middle_frame(container: InputContainer, stream: VideoStream) -> VideoFrame | None:
    """The first frame at or after half the duration (seeking to the keyframe before it)."""
    duration_s = _duration_s(container, stream)
    target_s = duration_s / 2 if duration_s else 0.0
    if target_s > 0 and stream.time_base is not None:
        container.seek(int(target_s / stream.time_base), stream=stream, backward=True)
    # Only reference frames are decoded on the way: a Hailuo clip has one keyframe, so reaching
    # its middle decodes half the clip, and skipping the B-frames saves ~40 % (~50 -> ~30 ms).
    stream.codec_context.skip_frame = "NONREF"
    last: VideoFrame | None = None
    for frame in container.decode(stream):
        last = frame
        if frame.time is None or frame.time >= target_s:
            return frame
    return last  # a target past the last frame (a short or odd file): its last frame


def _duration_s(container: InputContainer, stream: VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base: microseconds
    return 0.0


def encode(image: Image.Image, *, comment: str = "", max_bytes: int = MAX_BYTES) -> bytes:
    """A JPEG of ``image`` of at most ``max_bytes``: lower quality first, then smaller."""
    from PIL import Image

    image = image.convert("RGB")
    while True:
        for quality in _QUALITIES:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality, optimize=True, comment=comment)
            if buffer.tell() <= max_bytes:
                return buffer.getvalue()
        width, height = image.size
        if min(width, height) * _SHRINK < _MIN_SIDE:
            return buffer.getvalue()  # a tiny frame that still does not fit: never in practice
        image = image.resize(
            (int(width * _SHRINK), int(height * _SHRINK)), Image.Resampling.LANCZOS
        )


def cached_poster(video: Path) -> Poster | None:
    """The cached poster, if it is there and newer than the video; else None."""
    from PIL import Image, UnidentifiedImageError

    path = poster_path(video)
    try:
        if path.stat().st_mtime_ns < video.stat().st_mtime_ns:
            return None  # the video was replaced since: make it again
        jpeg = path.read_bytes()
        with Image.open(io.BytesIO(jpeg)) as image:
            width, height = image.size
            comment = image.info.get("comment", b"")
    except (OSError, UnidentifiedImageError):
        return None
    found = _COMMENT_TIME.search(comment if isinstance(comment, bytes) else b"")
    at_seconds = float(found.group(1)) if found else None
    return Poster(path=path, jpeg=jpeg, width=width, height=height, at_seconds=at_seconds)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename it into place."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
