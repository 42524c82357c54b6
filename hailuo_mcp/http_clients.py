"""LazyHttpClient: one httpx.AsyncClient, built on first use, refused once closed.

Each owner (PiAPIClient, VideoDownloader, ImageGate, JwksCache) passes a factory with its own
timeouts, limits, redirect policy and headers; this holds only the life cycle they share.
Building is lazy because a client's TLS context costs ~50 ms and ~3 MB: an idle server, or a
cold start, never pays for a client nobody has used.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx


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
