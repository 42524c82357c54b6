"""LazyHttpClient: built on first use only, one client for every use, refused once closed.

new_client: the rules every owner's client keeps (no redirect followed, who asks).
httpx itself: not loaded until a request is under way, then working as usual.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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


# Run in a fresh interpreter: this one imported httpx long ago. It prints whether httpx was
# loaded after the tools were listed and a local tool ran, then after a request was made.
_FIRST_USE_SCRIPT = """
import sys, anyio
from mcp import Client
from hailuo_mcp.config import Settings
from hailuo_mcp.server import build_server

def loaded() -> bool:
    return type(sys.modules.get("httpx")).__name__ == "module"

async def main() -> None:
    async with Client(build_server(Settings.from_env())) as client:
        await client.list_tools()
        await client.call_tool("estimate_cost", {})
        print("after local work:", loaded())
        result = await client.call_tool("get_task", {"task_id": "abc-123"})
        print("after a request:", loaded())
        print(result.content[0].text)

anyio.run(main)
"""


def test_httpx_is_loaded_only_once_a_request_is_made_and_then_works(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {
        **os.environ,
        "PIAPI_API_KEY": "test-key",
        "PIAPI_BASE_URL": f"http://127.0.0.1:{port}",
        "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
    }
    run = subprocess.run(
        [sys.executable, "-c", _FIRST_USE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = run.stdout.splitlines()
    assert lines[:2] == ["after local work: False", "after a request: True"]
    # The refused connection is mapped by httpx's own exception classes, loaded late.
    answer = "\n".join(lines[2:])
    assert "upstream_unavailable" in answer and "ConnectError" in answer, answer
    assert "task_id: abc-123" in answer


_THREADS_SCRIPT = """
import sys, threading
from hailuo_mcp.http_clients import _Deferred

wave = _Deferred("wave")  # a module nothing else here imports
assert "wave" not in sys.modules
start = threading.Barrier(8)
seen = []

def touch() -> None:
    start.wait()
    seen.append(wave.Wave_read)

threads = [threading.Thread(target=touch) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(seen), all(found is sys.modules["wave"].Wave_read for found in seen))
"""


def test_threads_touching_a_deferred_module_at_once_all_get_the_one_module() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert run.stdout.split() == ["8", "True"]
