"""The life cycle and house rules the owners of an httpx client share.

Each owner (PiAPIClient, VideoDownloader, ImageGate, JwksCache) has its own client, with its
own timeouts, limits and cookies: a slow video host must not starve PiAPI's connections, nor a
probe of a user's image carry another's cookies. What they share lives here: `LazyHttpClient`
(built on first use, refused once closed: a client's TLS context costs ~50 ms and ~3 MB, so an
idle server, or a cold start, never pays for one nobody has used), `HttpClientOwner` (closing
it on `async with` exit) and `new_client` (the rules every one of them follows).

httpx itself is imported on first use, for the same reason (~15 ms and ~1.5 MB, and a stdio
server answers `initialize` and `tools/list` without it): every module of ours takes `httpx`
from here, and touches it only once a request is under way.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from http.cookiejar import CookieJar
from types import ModuleType
from typing import TYPE_CHECKING, Any, Self

from hailuo_mcp.config import Settings


class _Deferred(ModuleType):
    """Stands for a module until its first attribute access imports it.

    Not the stdlib's LazyLoader, whose Python 3.11 version is not safe for two threads touching
    the module at once (the demo's emulator runs in a thread of its own); and nothing is put in
    `sys.modules`, so any other `import httpx` is an ordinary one.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._deferred_lock = threading.Lock()

    def __getattr__(self, attr: str) -> Any:
        # Reached only for names not yet copied in: after the import, lookups find them directly.
        with self._deferred_lock:
            module = importlib.import_module(self.__name__)
            self.__dict__.update(module.__dict__)
        return getattr(module, attr)


if TYPE_CHECKING:
    import httpx as httpx
else:
    httpx = _Deferred("httpx")

USER_AGENT = "hailuo-mcp"


def new_client(
    timeout: httpx.Timeout,
    *,
    connections: int,
    idle: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    cookies: CookieJar | None = None,
    user_agent: bool = True,
) -> httpx.AsyncClient:
    """An httpx client that follows no redirect: each owner decides what a redirect means.

    `connections` at once, `idle` of them kept alive (all of them when None);
    `user_agent=False` for hosts that need not know who asks (an OAuth issuer).
    """
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections if idle is None else idle,
        ),
        transport=transport,
        cookies=cookies,
        follow_redirects=False,
        headers={"user-agent": USER_AGENT} if user_agent else None,
    )


def upstream_timeout(settings: Settings) -> httpx.Timeout:
    """Per read `request_timeout`, `connect_timeout` to connect, twice the first for a pool slot."""
    return httpx.Timeout(
        settings.request_timeout,
        connect=settings.connect_timeout,
        pool=settings.request_timeout * 2,
    )


class LazyHttpClient:
    """The httpx client `factory` builds, on the first `get()`; `aclose()` ends it for good."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient], *, name: str) -> None:
        self._factory = factory
        # Names the owner in the "closed" error, e.g. "the video downloader".
        self._name = name
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether `aclose()` was called (no client is built or handed out afterwards)."""
        return self._closed

    def get(self) -> httpx.AsyncClient:
        """The client, built now if this is its first use; RuntimeError once closed."""
        if self._closed:
            raise RuntimeError(f"{self._name} is closed")
        if self._client is None:
            self._client = self._factory()
        return self._client

    async def aclose(self) -> None:
        """Close the client if it was ever built; safe to call more than once."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class HttpClientOwner:
    """Base of an object owning one `LazyHttpClient`: `async with` closes it on exit."""

    _http_client: LazyHttpClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; no request may start afterwards."""
        await self._http_client.aclose()
