"""One principal never sees, resumes or pays for another's tasks, over real streamable HTTP.

Two static tokens are two principals (a team's shared token says nothing more); a request's own
PiAPI key (X-PiAPI-Key) pays for that request and makes its sender a principal of its own. The
real HTTP app runs on loopback against the emulator; the callers are the MCP Python SDK client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from starlette.types import ASGIApp

from hailuo_mcp.emulator import Emulator
from hailuo_mcp.http_app import build_http_app
from hailuo_mcp.server import build_server
from tests.mcp_tasks_support import ERAS, LEGACY, HttpWire, Session
from tests.server.test_oauth import RESOURCE, SCOPE, Issuer, rsa_key
from tests.servers import mcp_over_http
from tests.support import FAST, MakeEmulator, error_of, make_settings, sample_png, text_of

TOKEN_A = "hm-team-token-a-5c1e9b3d7f2a4c6e"
TOKEN_B = "hm-team-token-b-0d2f4b6a8c1e3a5b"
USER_KEY = "piapi-user-key-6b8d0f2a4c"
OTHER_USER_KEY = "piapi-user-key-9e1c3a5b7d"
SERVER_KEY = "piapi-server-key-1a3c5e7b9d"
PROMPT = "a lighthouse at dusk, waves breaking"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def any_key_emulator(make_emulator: MakeEmulator) -> Emulator:
    """An emulator that accepts any key, 100x real time (a video in about a second)."""
    return make_emulator(clock=FAST, api_key=None)


@pytest.fixture
def user_key_emulator(make_emulator: MakeEmulator) -> Emulator:
    """An emulator that accepts only USER_KEY: a request it serves was paid with that key."""
    return make_emulator(clock=FAST, api_key=USER_KEY)


def serve_for(
    emulator: Emulator, tmp_path: Path, serve_app: Callable[[ASGIApp], str], **env: str
) -> str:
    settings = make_settings(
        emulator,
        tmp_path,
        PIAPI_API_KEY=SERVER_KEY,
        **{"HAILUO_HTTP_TOKEN": f"{TOKEN_A},{TOKEN_B}", "HAILUO_WAIT_SECONDS": "30", **env},
    )
    return serve_app(build_http_app(build_server(settings), settings, "127.0.0.1", 0))


def caller(
    url: str, token: str, key: str | None = None, mode: str = "legacy"
) -> AbstractAsyncContextManager[Client]:
    """A caller of the real app: its token, and its own PiAPI key when it sends one."""
    return mcp_over_http(
        url, token=token, headers={"X-PiAPI-Key": key} if key is not None else None, mode=mode
    )


async def generate(client: Client, prompt: str = PROMPT) -> dict[str, Any]:
    result = await client.call_tool("generate_video", {"prompt": prompt, "wait_seconds": 30})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["done"] is True, text_of(result)
    return result.structured_content


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])  # 2025-11-25 and 2026-07-28
async def test_a_second_token_sees_none_of_the_first_tokens_tasks_on_any_tool_or_resource(
    any_key_emulator: Emulator, tmp_path: Path, serve_app: Callable[[ASGIApp], str], mode: str
) -> None:
    url = serve_for(any_key_emulator, tmp_path, serve_app)
    with anyio.fail_after(60):
        async with caller(url, TOKEN_A, mode=mode) as a:
            made = await generate(a)
            task_id = made["task_id"]
            listed = await a.call_tool("list_tasks", {})
            assert [t["task_id"] for t in listed.structured_content["tasks"]] == [task_id]
            video_uri = f"hailuo://videos/{task_id}.mp4"
            assert video_uri in {str(r.uri) for r in (await a.list_resources()).resources}
            # The owner reads all three.
            for uri in (video_uri, f"{video_uri}/parts/0", f"hailuo://tasks/{task_id}"):
                assert (await a.read_resource(uri)).contents
            spent = await a.call_tool("spending_summary", {})
            assert spent.structured_content["all_time"]["completed"] == 1

        async with caller(url, TOKEN_B, mode=mode) as b:
            listed = await b.call_tool("list_tasks", {})
            assert listed.structured_content["tasks"] == []
            looked = await b.call_tool("get_task", {"task_id": task_id})
            error = error_of(looked)
            assert error["error_kind"] == "task_not_found"
            # Nothing of A's task reaches B: no prompt, no file, no state.
            assert PROMPT not in text_of(looked) and made["video_path"] not in text_of(looked)
            assert "task_id" not in error and looked.structured_content is None
            assert video_uri not in {str(r.uri) for r in (await b.list_resources()).resources}
            for uri in (video_uri, f"{video_uri}/parts/0", f"hailuo://tasks/{task_id}"):
                with pytest.raises(MCPError, match="task_id"):
                    await b.read_resource(uri)
            spent = await b.call_tool("spending_summary", {})
            assert spent.structured_content["all_time"]["completed"] == 0
            # The same request is B's own first one, not a repeat of A's: a new task is made.
            again = await generate(b)
            assert again["task_id"] != task_id

    assert len(any_key_emulator.task_ids()) == 2


@pytest.mark.anyio
async def test_a_callers_own_key_pays_for_its_request_and_is_never_stored_or_logged(
    user_key_emulator: Emulator,
    tmp_path: Path,
    serve_app: Callable[[ASGIApp], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = serve_for(user_key_emulator, tmp_path, serve_app)
    with anyio.fail_after(60):
        # The server's own key is not one the emulator takes: only the caller's key can pay.
        async with caller(url, TOKEN_A) as plain:
            refused = await plain.call_tool("generate_video", {"prompt": PROMPT})
            assert error_of(refused)["error_kind"] == "authentication"
        async with caller(url, TOKEN_A, key=USER_KEY) as paying:
            made = await generate(paying)
            assert Path(made["video_path"]).is_file()
            listed = await paying.call_tool("list_tasks", {})
            assert [t["task_id"] for t in listed.structured_content["tasks"]] == [made["task_id"]]
        # Another key on the same token is another principal.
        async with caller(url, TOKEN_A, key=OTHER_USER_KEY) as other:
            listed = await other.call_tool("list_tasks", {})
            assert listed.structured_content["tasks"] == []
            looked = await other.call_tool("get_task", {"task_id": made["task_id"]})
            assert error_of(looked)["error_kind"] == "task_not_found"

    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert USER_KEY.encode() not in path.read_bytes(), path
    assert USER_KEY not in caplog.text


@pytest.mark.anyio
async def test_a_malformed_key_header_is_refused_naming_the_header_before_any_upstream_call(
    any_key_emulator: Emulator, tmp_path: Path, serve_app: Callable[[ASGIApp], str]
) -> None:
    url = serve_for(any_key_emulator, tmp_path, serve_app)
    with anyio.fail_after(30):
        async with caller(url, TOKEN_A, key="x" * 300) as bad:
            result = await bad.call_tool("generate_video", {"prompt": PROMPT})
    error = error_of(result)
    assert error["error_kind"] == "invalid_input"
    assert "X-PiAPI-Key" in error["message"] and "x" * 300 not in text_of(result)
    assert any_key_emulator.task_ids() == []


class TokenWire(HttpWire):
    """Raw JSON-RPC over HTTP, every request with one caller's bearer token."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url)
        self._token = token

    def send(self, message: dict[str, Any], headers: dict[str, str]) -> dict[str, Any] | None:
        return super().send(message, {**headers, "authorization": f"Bearer {self._token}"})


@pytest.mark.parametrize("era", ERAS)
def test_mcp_tasks_of_one_token_are_invisible_to_another_on_both_eras(
    any_key_emulator: Emulator, tmp_path: Path, serve_app: Callable[[ASGIApp], str], era: str
) -> None:
    url = serve_for(any_key_emulator, tmp_path, serve_app, HAILUO_WAIT_SECONDS="0")
    owner = Session(TokenWire(url, TOKEN_A), era)
    stranger = Session(TokenWire(url, TOKEN_B), era)
    try:
        task = owner.created(owner.call("generate_video", {"prompt": PROMPT}))
        task_id = task["taskId"]
        assert owner.get(task_id)["taskId"] == task_id
        assert stranger.error("tasks/get", {"taskId": task_id})["code"] == -32602
        assert stranger.error("tasks/cancel", {"taskId": task_id})["code"] == -32602
        if era == LEGACY:
            listed = stranger.result("tasks/list")["tasks"]
            assert task_id not in {t["taskId"] for t in listed}
            assert task_id in {t["taskId"] for t in owner.result("tasks/list")["tasks"]}
        # The owner's task is untouched by the stranger's tries: it completes for its owner.
        assert owner.until_ended(task_id)["status"] == "completed"
    finally:
        owner.close()
        stranger.close()


@pytest.mark.anyio
async def test_two_oauth_subjects_of_one_client_are_two_principals(
    any_key_emulator: Emulator,
    tmp_path: Path,
    serve_app: Callable[[ASGIApp], str],
) -> None:
    issuer = Issuer(keys={"k1": rsa_key()})
    issuer.url = serve_app(issuer.app())
    url = serve_for(
        any_key_emulator,
        tmp_path,
        serve_app,
        HAILUO_OAUTH_ISSUER=issuer.url,
        HAILUO_RESOURCE_URL=RESOURCE,
        HAILUO_OAUTH_SCOPES=SCOPE,
    )
    alice, bob = issuer.token(sub="alice"), issuer.token(sub="bob")
    with anyio.fail_after(60):
        async with caller(url, alice) as a:
            made = await generate(a)
        async with caller(url, bob) as b:
            assert (await b.call_tool("list_tasks", {})).structured_content["tasks"] == []
            looked = await b.call_tool("get_task", {"task_id": made["task_id"]})
            assert error_of(looked)["error_kind"] == "task_not_found"
        # Alice again, with a fresh token: the same subject, so the same tasks.
        async with caller(url, issuer.token(sub="alice")) as again:
            listed = await again.call_tool("list_tasks", {})
            assert [t["task_id"] for t in listed.structured_content["tasks"]] == [made["task_id"]]


@pytest.mark.anyio
async def test_a_caller_over_http_cannot_have_a_file_of_the_servers_machine_uploaded(
    any_key_emulator: Emulator, tmp_path: Path, serve_app: Callable[[ASGIApp], str]
) -> None:
    # The file is in an allowed folder: a local user could use it, a remote caller may not.
    image = tmp_path / "secret-frame.png"
    image.write_bytes(sample_png(800, 600))
    url = serve_for(any_key_emulator, tmp_path, serve_app)
    with anyio.fail_after(30):
        async with caller(url, TOKEN_A) as remote:
            for given in (str(image), image.as_uri()):
                result = await remote.call_tool(
                    "generate_video", {"prompt": PROMPT, "image_url": given}
                )
                error = error_of(result)
                assert error["error_kind"] == "invalid_input"
                assert error["message"].startswith("image_url:")
    assert any_key_emulator.task_ids() == []
    assert not any(entry.path.endswith("ephemeral_resource") for entry in any_key_emulator.log)
