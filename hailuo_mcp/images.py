"""ImageGate: check `image_url` against the seed's image rules before anything is paid for.

An http(s) URL is probed with one bounded request per hop (a Range request for the first
bytes, a short budget, at most `MAX_REDIRECTS` redirects, no API key) to learn its byte size,
format and pixel size. A local path or `file://` URI is read from an allowed folder only
(`Settings.image_dirs`), checked the same way, and uploaded through PiAPI's upload endpoint;
the request then carries the uploaded URL. A broken rule raises `InputError` naming image_url,
the measured value and the rule. An image that cannot be read from here is not blocked: the
gate reports a warning and lets PiAPI decide.

Pillow reads the headers (`Image.open` is lazy); it is imported inside the worker-thread
functions so it stays off the server's start-up path.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import logging
import os
import re
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio
import httpx

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import HailuoError, InputError
from hailuo_mcp.models import VideoRequest
from hailuo_mcp.piapi import PiAPIClient

logger = logging.getLogger(__name__)

WarnFn = Callable[[str], None]

# The seed's rules. "20MB" is read as 20 MiB, as the emulator reads it [INF].
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MIN_SIDE_PX = 300
MAX_SIDE_PX = 4096
# PiAPI's upload endpoint takes at most 10 MB (read as MiB, like the emulator) [DOC].
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Pillow names a multi-picture JPEG (many camera files) "MPO": it is still a JPG file.
FORMAT_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png"}
MAX_REDIRECTS = 3
# Budget of a whole probe, redirects included (invariant 4); capped by HAILUO_REQUEST_TIMEOUT.
PROBE_BUDGET_S = 10.0

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+\d+-\d+/(\d+)\s*$", re.IGNORECASE)
_SHOWN_CHARS = 200
# Pillow's ways of saying "these bytes are not (all of) an image".
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error)


def _ignore(message: str) -> None:
    return None


@dataclass(frozen=True)
class ImageFacts:
    """What was measured about an image."""

    format: str
    width: int
    height: int


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def _size_text(size: int) -> str:
    return f"{size:,} bytes ({size / 2**20:.2f} MB)"


def check_byte_size(size: int) -> None:
    """Refuse an image over 20 MB."""
    if size > MAX_IMAGE_BYTES:
        raise InputError(
            f"image_url: the image is {_size_text(size)}; the maximum is 20 MB "
            f"({MAX_IMAGE_BYTES:,} bytes)"
        )


def check_facts(facts: ImageFacts) -> None:
    """Refuse an image whose format, sides or aspect ratio break the seed's rules."""
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
    return _shown(str(exc) or type(exc).__name__)


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
                    raise _not_an_image(reason) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning is only raised (instead of printed to stderr) when warnings are errors.
        raise _too_many_pixels(exc) from None
    except UnidentifiedImageError:
        if whole:
            raise _not_an_image("its first bytes match no image format") from None
        return None
    except _UNREADABLE as exc:
        if whole:
            raise _not_an_image(f"its header cannot be read: {_pillow_says(exc)}") from None
        return None
    return facts


@dataclass(frozen=True)
class _Fetched:
    """The first bytes of an image URL and what its headers said."""

    data: bytes
    complete: bool
    total: int | None
    content_type: str


class ImageGate:
    """Checks (and for local files, uploads) the image of a request before its create."""

    def __init__(self, settings: Settings, client: PiAPIClient) -> None:
        self._settings = settings
        self._client = client
        self._budget = min(PROBE_BUDGET_S, settings.request_timeout)
        # PiAPI fetches the image from its own servers: a private or loopback address only
        # works when "PiAPI" is itself local (the emulator).
        self._local_ok = _is_local_host(httpx.URL(settings.base_url).host)

    async def prepare(self, request: VideoRequest, warn: WarnFn = _ignore) -> VideoRequest:
        """Return the request with a checked http(s) image URL, or raise InputError.

        `warn` receives a sentence for each check that could not be made from here.
        """
        value = request.image_url
        if not value:
            return request
        scheme = _SCHEME_RE.match(value)
        kind = scheme.group(1).lower() if scheme else ""
        if kind in ("http", "https"):
            await self._check_url(value, warn)
            return request
        if kind == "file":
            path = _path_from_file_uri(value)
        elif kind:
            raise InputError(
                f"image_url: {kind}: URLs are not supported; give an http(s) URL or the path "
                "of a local JPG or PNG file"
            )
        else:
            path = Path(value).expanduser()
            if not path.is_absolute():
                raise InputError(
                    f"image_url: {_shown(value)!r} is a relative path; give the absolute path "
                    "of the image (or an http(s) URL)"
                )
        url = await self._upload_local(path, _shown(value))
        return request.model_copy(update={"image_url": url})

    # URLs

    async def _check_url(self, url: str, warn: WarnFn) -> None:
        problem = _url_problem(url, local_ok=self._local_ok)
        if problem:
            raise InputError(f"image_url: {problem}")
        fetched: _Fetched | str = f"no answer within {self._budget:g} s"
        with anyio.move_on_after(self._budget):
            try:
                fetched = await self._fetch_start(url)
            except httpx.TimeoutException:
                pass  # the same budget as the scope: one message whichever fires first
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                fetched = f"the request failed ({type(exc).__name__})"
        if isinstance(fetched, str):
            # Unreadable for a passing reason: what the name says can still be checked.
            refused = _refused_extension(url)
            if refused:
                raise InputError(
                    f"image_url names a .{refused} file; Hailuo takes JPG or PNG images only"
                )
            warn(_unchecked(fetched))
            return
        if fetched.total is not None:
            check_byte_size(fetched.total)
        whole = fetched.complete
        facts = await anyio.to_thread.run_sync(
            functools.partial(read_header, io.BytesIO(fetched.data), whole=whole, verify=whole)
        )
        if facts is None:
            media = fetched.content_type.split(";")[0].strip().lower()
            if media.startswith(("text/", "application/json", "application/xml")):
                # A web page or an API answer instead of the image file: a common mix-up.
                raise InputError(
                    f"image_url: the URL serves {media}, not a JPG or PNG image; give the URL "
                    "of the image file itself"
                )
            warn(_unchecked(f"no image header in its first {len(fetched.data):,} bytes"))
            return
        check_facts(facts)
        if fetched.total is None:
            warn(
                "image_url: the image host did not say how big the file is, so the 20 MB limit "
                "was not checked here."
            )

    async def _fetch_start(self, url: str) -> _Fetched | str:
        """GET the first bytes of `url`, following at most MAX_REDIRECTS redirects by hand.

        Returns why it could not when the image cannot be read from here.
        """
        cap = self._settings.max_image_bytes_probe
        headers = {
            "range": f"bytes=0-{cap - 1}",
            "accept": "image/png,image/jpeg;q=0.9,image/*;q=0.5",
            # Content-Length / Content-Range then give the size of the file itself.
            "accept-encoding": "identity",
        }
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            # No API key here: the shared client sends it only where piapi.py adds it.
            async with self._client.http.stream(
                "GET", current, headers=headers, timeout=self._budget, follow_redirects=False
            ) as response:
                if response.has_redirect_location:
                    target = str(response.url.join(response.headers["location"]))
                    problem = _url_problem(target, local_ok=self._local_ok)
                    if problem:
                        raise InputError(
                            f"image_url redirects to {_shown(target)!r}, which is refused: "
                            f"{problem}"
                        )
                    current = target
                    continue
                if response.status_code in (404, 410):
                    # Gone for good: PiAPI would fail the task on it, so refuse before paying.
                    raise InputError(
                        f"image_url: the image host answers HTTP {response.status_code} (no such "
                        "file); give the URL of an image that exists"
                    )
                if not 200 <= response.status_code < 300:
                    return f"the image host answered HTTP {response.status_code}"
                data = bytearray()
                ended = True
                # Raw bytes: a body compressed against our wishes is never inflated here.
                async for chunk in response.aiter_raw():
                    data += chunk
                    if len(data) >= cap:
                        ended = False
                        break
                total = _total_size(response, len(data), ended)
                return _Fetched(
                    data=bytes(data),
                    complete=total is not None and len(data) >= total,
                    total=total,
                    content_type=response.headers.get("content-type", ""),
                )
        return f"it redirects more than {MAX_REDIRECTS} times"

    # Local files

    async def _upload_local(self, path: Path, shown: str) -> str:
        name, data = await anyio.to_thread.run_sync(self._read_local, path, shown)
        try:
            return await self._client.upload(name, data)
        except HailuoError as exc:
            # Keep the error's kind; add the way out that needs no upload.
            exc.message = (
                f"image_url: uploading the local image to PiAPI failed: {exc.message} You can "
                "also give a public http(s) URL of the image instead."
            )
            exc.args = (exc.message,)
            raise

    def _read_local(self, path: Path, shown: str) -> tuple[str, bytes]:
        """Check a local image in an allowed folder; return (upload file name, bytes). Blocking."""
        roots = [Path(root).expanduser().resolve() for root in self._settings.image_dirs]
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
            raise InputError(f"image_url: cannot resolve {shown} ({exc})") from None
        if not any(real.is_relative_to(root) for root in roots):
            via = "" if real == path else f" (it resolves to {_shown(str(real))})"
            raise InputError(
                f"image_url: {shown} is outside the folders this server may read images from"
                f"{via}; allowed: {', '.join(str(r) for r in roots)}. Move the image into one "
                "of them or add its folder to HAILUO_IMAGE_DIRS."
            )
        # O_NOFOLLOW: the checked path cannot be swapped for a symlink; O_NONBLOCK: a FIFO
        # cannot hang the open.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(real, flags)
        except FileNotFoundError:
            raise InputError(f"image_url: there is no file at {shown}") from None
        except OSError as exc:
            raise InputError(
                f"image_url: cannot read {shown} ({exc.strerror or type(exc).__name__})"
            ) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise InputError(f"image_url: {shown} is not a regular file (a folder or a device?)")
        with os.fdopen(fd, "rb") as file:
            # The size first: nothing of a file too big to use is read.
            check_byte_size(info.st_size)
            facts = read_header(file, whole=True)
            assert facts is not None  # whole=True raises instead of returning None
            check_facts(facts)
            if info.st_size > MAX_UPLOAD_BYTES:
                raise InputError(
                    f"image_url: the local file is {_size_text(info.st_size)}; PiAPI's upload "
                    f"endpoint takes at most 10 MB ({MAX_UPLOAD_BYTES:,} bytes). Make it smaller "
                    "(e.g. save it as JPG) or give a public http(s) URL of it (up to 20 MB)."
                )
            file.seek(0)
            data = file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise InputError(f"image_url: {shown} grew while it was read; try again")
        # The whole file is in hand: verify it, so a truncated image is refused before upload.
        read_header(io.BytesIO(data), whole=True, verify=True)
        return f"image.{FORMAT_EXTENSIONS[facts.format]}", data


_REFUSED_EXTENSIONS = ("gif", "webp", "bmp", "tif", "tiff", "heic", "avif", "svg")


def _refused_extension(url: str) -> str | None:
    """The extension of the URL's file name when it names a format Hailuo refuses."""
    name = urlsplit(url).path.rsplit("/", 1)[-1].lower()
    extension = name.rsplit(".", 1)[-1] if "." in name else ""
    return extension if extension in _REFUSED_EXTENSIONS else None


def _unchecked(why: str) -> str:
    return (
        f"image_url could not be checked here ({why}); it was sent to PiAPI unchecked. If it "
        "breaks PiAPI's image rules the task fails (nothing is charged)."
    )


def _is_local_host(host: str) -> bool:
    """Whether `host` is loopback, private or link-local (unreachable from PiAPI's servers)."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
    )


def _url_problem(url: str, *, local_ok: bool) -> str | None:
    """Why `url` is not a usable http(s) URL, or None."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "it is not a valid URL"
    if parsed.scheme not in ("http", "https"):
        return f"only http and https URLs are allowed (got {parsed.scheme or 'no'} scheme)"
    if not parsed.host:
        return "the URL has no host name"
    if not local_ok and _is_local_host(parsed.host):
        return (
            f"{parsed.host} is a local or private address that PiAPI cannot reach; give a "
            "public URL, or the local file's path (it is then uploaded for you)"
        )
    return None


def _path_from_file_uri(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InputError(
            f"image_url: {_shown(uri)!r} names another machine ({parts.netloc}); a file:// URI "
            "must point to a file on this machine"
        )
    # url2pathname also decodes %-escapes (and drive letters on Windows).
    return Path(url2pathname(parts.path))


def _total_size(response: httpx.Response, received: int, ended: bool) -> int | None:
    """The file's full size from Content-Range, a finished body, or Content-Length."""
    if response.status_code == 206:
        match = _CONTENT_RANGE_RE.match(response.headers.get("content-range", ""))
        return int(match.group(1)) if match else None
    if ended:
        return received
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        return None
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None
