"""ImageGate: check `image_url` against PiAPI's image rules before anything is paid for.

An http(s) URL is probed with one bounded request per hop (a Range request for the first
bytes, a short budget, at most `MAX_REDIRECTS` redirects, no API key) to learn its byte size,
format and pixel size. A local path or `file://` URI goes to local_images.py: read from an
allowed folder only, checked the same way, and uploaded; the request then carries the
uploaded URL. A broken rule (image_facts.py) raises `InputError` naming image_url, the
measured value and the rule. An image that cannot be read from here is not blocked: the gate
reports a warning and lets PiAPI decide.

The hosts probed are whatever an assistant was given, so the gate has an HTTP client of its
own, fit for strangers: no key, no cookies kept, redirects followed by hand (each hop checked),
every timeout the probe budget, and few connections.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import anyio

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import InputError
from hailuo_mcp.http_clients import HttpClientOwner, LazyHttpClient, httpx, new_client
from hailuo_mcp.image_facts import (
    check_byte_size,
    check_facts,
    read_header,
    refused_extension,
    shown,
)
from hailuo_mcp.local_images import Uploader, path_from_file_uri, upload_local
from hailuo_mcp.models import VideoRequest

WarnFn = Callable[[str], None]

MAX_REDIRECTS = 3
# Probes in flight at once (one per generate_video with an image URL), and idle connections
# kept: a stranger's host gets no more of this server than that.
MAX_PROBES = 10
_IDLE_PROBES = 2
# Budget of a whole probe, redirects included (invariant 4 in docs/ARCHITECTURE.md: no wait is
# unbounded); capped by HAILUO_REQUEST_TIMEOUT.
PROBE_BUDGET_S = 10.0

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+\d+-\d+/(\d+)\s*$", re.IGNORECASE)


def _ignore(message: str) -> None:
    return None


@dataclass(frozen=True)
class _Fetched:
    """The first bytes of an image URL and what its headers said."""

    data: bytes
    complete: bool
    total: int | None
    content_type: str


class ImageGate(HttpClientOwner):
    """Checks (and for local files, uploads) the image of a request before its create.

    Used as `async with ImageGate(settings, uploader) as gate`, it keeps one HTTP client for
    its probes, built on first use.
    """

    def __init__(
        self,
        settings: Settings,
        uploader: Uploader,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._uploader = uploader
        self._transport = transport
        self._budget = min(PROBE_BUDGET_S, settings.request_timeout)
        # PiAPI fetches the image from its own servers: a private or loopback address only
        # works when "PiAPI" is itself local (the emulator).
        self._local_ok = _is_local_host(urlsplit(settings.base_url).hostname or "")
        self._http_client = LazyHttpClient(self._new_client, name="the image gate")
        self._entered = False

    async def __aenter__(self) -> Self:
        self._entered = True
        return self

    def _new_client(self) -> httpx.AsyncClient:
        return new_client(
            httpx.Timeout(self._budget),
            connections=MAX_PROBES,
            idle=_IDLE_PROBES,
            transport=self._transport,
            # Each hop is checked before it is followed (`_fetch_start`), and a cookie one
            # host sets must not follow the next user's probe around.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    @asynccontextmanager
    async def _http(self) -> AsyncIterator[httpx.AsyncClient]:
        """The probes' client: the gate's own, built on first use (an idle server never pays)."""
        if self._entered:
            yield self._http_client.get()
            return
        # A gate never entered (a one-off `ImageGate(settings, client).prepare`, as some tests
        # use it) has nobody to close a long-lived client, so each probe gets its own, closed
        # even when cancelled. The server's runtime enters its gate.
        client = self._new_client()
        try:
            yield client
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

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
            path = path_from_file_uri(value)
        elif kind:
            raise InputError(
                f"image_url: {kind}: URLs are not supported; give an http(s) URL or the path "
                "of a local JPG or PNG file"
            )
        else:
            path = Path(value).expanduser()
            if not path.is_absolute():
                raise InputError(
                    f"image_url: {shown(value)!r} is a relative path; give the absolute path "
                    "of the image (or an http(s) URL)"
                )
        url = await upload_local(self._uploader, path, shown(value), self._settings.image_dirs)
        return request.model_copy(update={"image_url": url})

    # URLs

    async def _check_url(self, url: str, warn: WarnFn) -> None:
        problem = _url_problem(url, local_ok=self._local_ok)
        if problem:
            raise InputError(f"image_url: {problem}")
        fetched: _Fetched | str = f"no answer within {self._budget:g} s"
        with anyio.move_on_after(self._budget):
            try:
                async with self._http() as http:
                    fetched = await self._fetch_start(http, url)
            except httpx.TimeoutException:
                pass  # the same budget as the scope: one message whichever fires first
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                fetched = f"the request failed ({type(exc).__name__})"
        if isinstance(fetched, str):
            # Unreadable for a passing reason: what the name says can still be checked.
            refused = refused_extension(url)
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

    async def _fetch_start(self, http: httpx.AsyncClient, url: str) -> _Fetched | str:
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
            async with http.stream("GET", current, headers=headers) as response:
                if response.has_redirect_location:
                    target = str(response.url.join(response.headers["location"]))
                    problem = _url_problem(target, local_ok=self._local_ok)
                    if problem:
                        raise InputError(
                            f"image_url redirects to {shown(target)!r}, which is refused: {problem}"
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
