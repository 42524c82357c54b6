"""Output videos: the committed sample MP4, or ``N`` synthetic bytes streamed in chunks.

``media/sample.mp4`` is a 6 s, 480x270, 24 fps H.264 (yuv420p, ``+faststart``) test pattern
without audio, made once with::

    ffmpeg -f lavfi -i testsrc2=size=480x270:rate=24:duration=6 -c:v libx264 -preset veryslow \\
        -crf 30 -pix_fmt yuv420p -profile:v high -movflags +faststart -map_metadata -1 \\
        -fflags +bitexact -flags:v +bitexact -an sample.mp4
"""

from __future__ import annotations

import functools
import threading
from importlib import resources

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

CHUNK_BYTES = 64 * 1024


@functools.cache
def sample_video() -> bytes:
    """The sample MP4's bytes (read once, on first use)."""
    return resources.files(__package__).joinpath("media", "sample.mp4").read_bytes()


@functools.cache
def _filler() -> bytes:
    # One fixed block reused for every chunk, so memory stays constant whatever the size.
    return bytes(i % 251 for i in range(CHUNK_BYTES))


class VideoBody(Response):
    """A ``video/mp4`` answer with an exact ``Content-Length``, optionally cut halfway.

    The body goes out in 64 KiB chunks. When ``truncated`` (or when the server stops) the
    app returns before the promised length, so uvicorn closes the connection mid-body.
    """

    media_type = "video/mp4"

    def __init__(self, size: int, data: bytes | None, truncated: bool, stopping: threading.Event):
        super().__init__(headers={"content-length": str(size)}, media_type=self.media_type)
        self.size = size
        self._data = data
        self.truncated = truncated
        self.completes = not truncated
        self._stopping = stopping

    @classmethod
    def real(cls, data: bytes, truncated: bool, stopping: threading.Event) -> VideoBody:
        """Serve ``data`` (the sample video)."""
        return cls(len(data), data, truncated, stopping)

    @classmethod
    def synthetic(cls, size: int, truncated: bool, stopping: threading.Event) -> VideoBody:
        """Serve ``size`` synthetic bytes."""
        return cls(size, None, truncated, stopping)

    def _chunk(self, offset: int, length: int) -> bytes:
        if self._data is not None:
            return self._data[offset : offset + length]
        if offset == 0:
            # A real MP4 "ftyp" box first, so anything sniffing magic bytes sees a video.
            return (sample_video()[:32] + _filler())[:length]
        return _filler()[:length]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        limit = self.size // 2 if self.truncated else self.size
        if scope["method"] == "HEAD":
            limit = 0
        offset = 0
        while offset < limit:
            if self._stopping.is_set():
                return  # cut: shutdown must not wait for a slow reader
            length = min(CHUNK_BYTES, limit - offset)
            await send(
                {
                    "type": "http.response.body",
                    "body": self._chunk(offset, length),
                    "more_body": True,
                }
            )
            offset += length
        if not self.truncated:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
