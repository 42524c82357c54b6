"""VideoDownloader: save a finished video from its (ephemeral) URL, whole or not at all.

The video host is not PiAPI: this client has its own httpx.AsyncClient, which never carries the
API key. The bytes stream into a hidden temporary file beside the destination (every byte
written, then fsync), and an atomic rename puts the complete file in place; on any failure the
temporary file is removed, so nothing partial is ever at the destination.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import anyio

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import DownloadError, StorageError
from hailuo_mcp.http_clients import (
    HttpClientOwner,
    LazyHttpClient,
    httpx,
    new_client,
    upstream_timeout,
)
from hailuo_mcp.upstream import RequestGate

_CHUNK = 64 * 1024
# Downloads in flight at once; more wait at the gate (upstream.RequestGate says why).
MAX_DOWNLOADS = 64


class VideoDownloader(HttpClientOwner):
    """Streams videos to files, used as `async with VideoDownloader(settings) as d`."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._http_client = LazyHttpClient(self._new_client, name="the video downloader")
        self._gate = RequestGate(MAX_DOWNLOADS, settings.request_timeout * 2)

    def _new_client(self) -> httpx.AsyncClient:
        # Per read: a whole download gets `download_timeout` (see `download`). A redirect
        # answers as a failed download, as it always has: the URL PiAPI gives is the file
        # itself. No API key, ever: the video host is not PiAPI.
        return new_client(
            upstream_timeout(self._settings),
            connections=MAX_DOWNLOADS,
            transport=self._transport,
        )

    def _http(self) -> httpx.AsyncClient:
        """The httpx client, built on first use: an idle server never pays for its TLS context."""
        return self._http_client.get()

    async def download(self, url: str, destination: Path, *, task_id: str) -> int:
        """Stream `url` into `destination` via a temporary file and an atomic rename.

        Returns the bytes written. Raises DownloadError (the URL failed, or took longer than
        HAILUO_DOWNLOAD_TIMEOUT) or StorageError (the file could not be written), both naming
        `task_id`; either way nothing is left at `destination`.
        """
        folder = destination.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temp_name = _open_temp(folder, destination.name)
        except OSError as exc:
            raise StorageError(
                f"Cannot write to the output folder {folder} ({exc.strerror or exc}). Set "
                "HAILUO_OUTPUT_DIR to a writable folder; the video is still at video_url.",
                task_id=task_id,
            ) from exc
        temp = Path(temp_name)
        written = 0
        try:
            with anyio.fail_after(self._settings.download_timeout):
                async with self._gate.slot(), self._http().stream("GET", url) as response:
                    if response.status_code != 200:
                        raise DownloadError(
                            f"The video URL answered HTTP {response.status_code}"
                            + (" (expired?)" if response.status_code in (403, 404, 410) else "")
                            + ".",
                            task_id=task_id,
                        )
                    async for chunk in response.aiter_bytes(_CHUNK):
                        _write_all(fd, chunk)
                        written += len(chunk)
            await anyio.to_thread.run_sync(os.fsync, fd)
            os.close(fd)
            fd = -1
            os.replace(temp, destination)
            return written
        except TimeoutError as exc:
            raise DownloadError(
                f"The video download took longer than {self._settings.download_timeout:g} s.",
                task_id=task_id,
            ) from exc
        except httpx.HTTPError as exc:
            raise DownloadError(
                f"The video download was interrupted after {written} bytes ({type(exc).__name__}).",
                task_id=task_id,
            ) from exc
        except OSError as exc:
            raise StorageError(
                f"Cannot save the video in {folder} ({exc.strerror or exc}); the video is still "
                "at video_url for a while.",
                task_id=task_id,
            ) from exc
        finally:
            if fd >= 0:
                os.close(fd)
            if temp.exists():
                temp.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte: os.write may store fewer than asked (a nearly full disk, a signal)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _open_temp(folder: Path, final_name: str) -> tuple[int, str]:
    """Create a hidden temporary file beside the final one (same file system: atomic rename)."""
    name = folder / f".{final_name}.{secrets.token_hex(6)}.part"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    return fd, str(name)
