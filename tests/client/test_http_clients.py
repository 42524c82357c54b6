"""LazyHttpClient: built on first use only, one client for every use, refused once closed."""

from __future__ import annotations

import httpx
import pytest

from hailuo_mcp.http_clients import LazyHttpClient

pytestmark = pytest.mark.anyio


class Factory:
    """Counts the clients it builds; each answers 204 without a network."""

    def __init__(self) -> None:
        self.built: list[httpx.AsyncClient] = []

    def __call__(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(204)))
        self.built.append(client)
        return client


async def test_the_client_is_built_on_first_use_and_then_reused() -> None:
    factory = Factory()
    lazy = LazyHttpClient(factory, name="the test client")
    assert factory.built == []
    first = lazy.get()
    assert (await first.get("http://example.test/")).status_code == 204
    assert lazy.get() is first
    assert factory.built == [first]
    await lazy.aclose()


async def test_closing_closes_the_built_client_and_refuses_every_later_use() -> None:
    factory = Factory()
    lazy = LazyHttpClient(factory, name="the test client")
    client = lazy.get()
    await lazy.aclose()
    await lazy.aclose()  # a second close is harmless
    assert lazy.closed and client.is_closed
    with pytest.raises(RuntimeError, match="^the test client is closed$"):
        lazy.get()
    assert factory.built == [client]


async def test_a_client_never_used_is_never_built_not_even_to_be_closed() -> None:
    factory = Factory()
    lazy = LazyHttpClient(factory, name="the test client")
    await lazy.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        lazy.get()
    assert factory.built == []
