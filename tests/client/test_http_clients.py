"""LazyHttpClient: built on first use only, one client for every use, refused once closed.

new_client: the rules every owner's client keeps (no redirect followed, who asks).
"""

from __future__ import annotations

import httpx
import pytest

from hailuo_mcp.http_clients import HttpClientOwner, LazyHttpClient, new_client

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


def redirecting(request: httpx.Request) -> httpx.Response:
    """Every path but /end redirects to /end, echoing the user agent it was sent."""
    agent = request.headers.get("user-agent", "")
    if request.url.path == "/end":
        return httpx.Response(200, text=agent)
    return httpx.Response(302, headers={"location": "/end"}, text=agent)


@pytest.mark.parametrize(("user_agent", "sent"), [(True, "hailuo-mcp"), (False, "python-httpx")])
async def test_new_client_follows_no_redirect_and_says_who_asks_only_when_told(
    user_agent: bool, sent: str
) -> None:
    client = new_client(
        httpx.Timeout(5.0),
        connections=2,
        transport=httpx.MockTransport(redirecting),
        user_agent=user_agent,
    )
    async with client:
        answer = await client.get("http://host.test/start")
    assert answer.status_code == 302  # the owner decides what a redirect means
    assert answer.text.startswith(sent)


class Owner(HttpClientOwner):
    def __init__(self, factory: Factory) -> None:
        self._http_client = LazyHttpClient(factory, name="the owner")


async def test_an_owner_closes_its_client_when_its_block_ends() -> None:
    factory = Factory()
    async with Owner(factory) as owner:
        client = owner._http_client.get()
    assert client.is_closed
    with pytest.raises(RuntimeError, match="^the owner is closed$"):
        owner._http_client.get()
