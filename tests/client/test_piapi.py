"""PiAPIClient against the emulator: envelope variants, and each operation's failure mapping.

For every fault the emulator can script, the error's kind, its task id, its cause (the httpx
exception or the JSON error it came from) and the number of requests sent: nothing here is
ever retried, and a create that may have been sent is never reported as retryable.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from hailuo_mcp.emulator import Emulator, Fault
from hailuo_mcp.errors import (
    AmbiguousCreateError,
    AuthenticationError,
    ConfigurationError,
    HailuoError,
    InputError,
    InsufficientCreditsError,
    MalformedResponseError,
    RateLimitedError,
    RetryableError,
    TaskNotFoundError,
    UpstreamUnavailableError,
)
from hailuo_mcp.models import TaskStatus, VideoRequest
from hailuo_mcp.piapi import PiAPIClient
from hailuo_mcp.upstream import RequestGate
from tests.support import MakeEmulator, make_settings

pytestmark = pytest.mark.anyio

# Short enough that a hang costs little, long enough for a loaded machine's loopback.
REQUEST_TIMEOUT = "0.5"


@pytest.fixture
async def client(emulator: Emulator, tmp_path: Path) -> AsyncIterator[PiAPIClient]:
    settings = make_settings(emulator, tmp_path, HAILUO_REQUEST_TIMEOUT=REQUEST_TIMEOUT)
    async with PiAPIClient(settings) as piapi:
        yield piapi


def closed_port_url() -> str:
    """A loopback URL nothing listens at."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def requests_to(emulator: Emulator, route: str) -> int:
    return sum(1 for entry in emulator.log if entry.route == route)


async def finish(client: PiAPIClient, task_id: str) -> str:
    with anyio.fail_after(20):
        while True:
            task = await client.get(task_id)
            if task.status.is_terminal:
                assert task.video_url
                return task.video_url
            await anyio.sleep(0.05)


@pytest.mark.parametrize("output_key", ["video", "video_url", "download_url"])
@pytest.mark.parametrize("envelope_code", [200, 0])
async def test_the_client_reads_every_envelope_and_output_variant(
    make_emulator: MakeEmulator, tmp_path: Path, output_key: str, envelope_code: int
) -> None:
    emulator = make_emulator(
        clock=200,
        envelope_code=envelope_code,
        output_key=output_key,
        fixed_durations=None,
        seed=None,
    )
    async with PiAPIClient(make_settings(emulator, tmp_path)) as client:
        task = await client.create(VideoRequest(prompt="x"))
        assert task.status in (TaskStatus.PENDING, TaskStatus.STAGED)
        url = await finish(client, task.task_id)
    assert url.startswith(emulator.url)


# create: not sent, refused, or maybe sent


@dataclass(frozen=True)
class Outcome:
    """What one faulted create must come to."""

    error: type[HailuoError]
    words: str
    cause: type[BaseException] | None
    recorded: int = 0  # tasks the emulator recorded (it may have, and we not know its id)


CREATE_CASES = {
    "hang": (
        Fault("create", "hang", delay=5),
        Outcome(AmbiguousCreateError, "answer was lost (ReadTimeout)", httpx.ReadTimeout),
    ),
    "drop-after-record": (
        Fault("create", "drop_after_record"),
        Outcome(AmbiguousCreateError, "NOT retried", httpx.RemoteProtocolError, 1),
    ),
    "garbled-200": (
        Fault("create", "malformed"),
        Outcome(AmbiguousCreateError, "unreadable answer (HTTP 200", json.JSONDecodeError),
    ),
    "error-code-in-200": (
        Fault("create", "malformed", body={"code": 500, "message": "busy"}),
        Outcome(AmbiguousCreateError, "server-error code instead of a task", None),
    ),
    "no-data-in-200": (
        Fault("create", "malformed", body={"code": 200, "message": "ok"}),
        Outcome(AmbiguousCreateError, "without a task object", None),
    ),
    "not-an-object": (
        Fault("create", "malformed", body=b"[1, 2]"),
        Outcome(AmbiguousCreateError, "not a JSON object", None),
    ),
    "no-task-id": (
        Fault("create", "malformed", body={"code": 200, "data": {"status": "pending"}}),
        Outcome(AmbiguousCreateError, "no usable task id", None),
    ),
    "404": (
        Fault("create", "status", status=404),
        Outcome(ConfigurationError, "PIAPI_BASE_URL", None),
    ),
    "500": (
        Fault("create", "status", status=500),
        Outcome(UpstreamUnavailableError, "server error (HTTP 500)", None),
    ),
    "503": (
        Fault("create", "status", status=503),
        Outcome(UpstreamUnavailableError, "service temporarily unavailable", None),
    ),
    "429": (
        Fault("create", "status", status=429, retry_after=7),
        Outcome(RateLimitedError, "Retry after 7 s", None),
    ),
    "402": (
        Fault("create", "status", status=402),
        Outcome(InsufficientCreditsError, "too few credits", None),
    ),
    "401": (
        Fault("create", "status", status=401),
        Outcome(AuthenticationError, "PIAPI_API_KEY", None),
    ),
    "400": (
        Fault("create", "status", status=400, body={"code": 400, "message": "prompt flagged"}),
        Outcome(InputError, "prompt flagged", None),
    ),
}


@pytest.mark.parametrize(("fault", "outcome"), CREATE_CASES.values(), ids=CREATE_CASES.keys())
async def test_a_failed_create_is_sent_once_and_says_whether_a_task_may_exist(
    client: PiAPIClient, emulator: Emulator, fault: Fault, outcome: Outcome
) -> None:
    emulator.add_fault(fault)
    with anyio.fail_after(10), pytest.raises(HailuoError) as caught:
        await client.create(VideoRequest(prompt="x"))
    error = caught.value
    assert type(error) is outcome.error, error
    assert outcome.words in error.message
    assert error.task_id is None
    if outcome.cause is None:
        assert error.__cause__ is None
    else:
        assert isinstance(error.__cause__, outcome.cause)
    assert emulator.creates() == 1
    assert emulator.creates_recorded() == outcome.recorded


async def test_a_create_that_cannot_connect_says_no_task_was_created(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emulator = make_emulator(clock=1, fixed_durations=None, seed=None)
    settings = make_settings(emulator, tmp_path, PIAPI_BASE_URL=closed_port_url())
    async with PiAPIClient(settings) as client:
        with pytest.raises(UpstreamUnavailableError) as caught:
            await client.create(VideoRequest(prompt="x"))
    assert "(ConnectError); no task was created" in caught.value.message
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_a_create_answered_with_a_redirect_is_not_followed_and_created_nothing(
    make_emulator: MakeEmulator, tmp_path: Path, serve_app: Callable[[ASGIApp], str]
) -> None:
    async def moved(request: Request) -> Response:
        return RedirectResponse("https://elsewhere.example/api/v1/task", status_code=301)

    host = serve_app(Starlette(routes=[Route("/api/v1/task", moved, methods=["POST"])]))
    emulator = make_emulator(clock=1, fixed_durations=None, seed=None)
    settings = make_settings(emulator, tmp_path, PIAPI_BASE_URL=host)
    async with PiAPIClient(settings) as client:
        with pytest.raises(MalformedResponseError) as caught:
            await client.create(VideoRequest(prompt="x"))
    assert "unreadable answer (HTTP 301, not JSON)" in caught.value.message
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


# get: every passing fault is retryable and names the task

GET_CASES = {
    "hang": (
        Fault("get", "hang", delay=5),
        Outcome(
            UpstreamUnavailableError, "did not answer in time (ReadTimeout)", httpx.ReadTimeout
        ),
    ),
    "truncated": (
        Fault("get", "truncate"),
        Outcome(UpstreamUnavailableError, "connection to PiAPI failed", httpx.RemoteProtocolError),
    ),
    "garbled": (
        Fault("get", "malformed"),
        Outcome(MalformedResponseError, "unreadable answer", json.JSONDecodeError),
    ),
    "no-data": (
        Fault("get", "malformed", body={"code": 200}),
        Outcome(MalformedResponseError, "without a task object", None),
    ),
    "500": (
        Fault("get", "status", status=500),
        Outcome(UpstreamUnavailableError, "HTTP 500", None),
    ),
    "502-html": (
        Fault("get", "status", status=502),
        Outcome(UpstreamUnavailableError, "502 Bad Gateway", None),
    ),
    "error-code-in-200": (
        Fault("get", "malformed", body={"code": 503, "message": "busy"}),
        Outcome(UpstreamUnavailableError, "HTTP 503): busy", None),
    ),
    "429": (
        Fault("get", "status", status=429, retry_after=3),
        Outcome(RateLimitedError, "Retry after 3 s", None),
    ),
    "401": (
        Fault("get", "status", status=401),
        Outcome(AuthenticationError, "HTTP 401", None),
    ),
    "404": (
        Fault("get", "status", status=404),
        Outcome(TaskNotFoundError, "no such task", None),
    ),
}


@pytest.mark.parametrize(("fault", "outcome"), GET_CASES.values(), ids=GET_CASES.keys())
async def test_a_failed_get_names_the_task_and_is_retryable_when_the_fault_passes(
    client: PiAPIClient, emulator: Emulator, fault: Fault, outcome: Outcome
) -> None:
    task = await client.create(VideoRequest(prompt="x"))
    emulator.add_fault(fault)
    with anyio.fail_after(10), pytest.raises(HailuoError) as caught:
        await client.get(task.task_id)
    error = caught.value
    assert type(error) is outcome.error, error
    assert outcome.words in error.message
    assert error.task_id == task.task_id
    if outcome.cause is None:
        assert error.__cause__ is None
    else:
        assert isinstance(error.__cause__, outcome.cause)
    refusals = (AuthenticationError, TaskNotFoundError)
    assert isinstance(error, RetryableError) == (outcome.error not in refusals)
    assert emulator.gets(task.task_id) == 1
    assert (await client.get(task.task_id)).task_id == task.task_id  # the fault passed


async def test_a_get_that_cannot_connect_is_retryable_and_names_the_task(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emulator = make_emulator(clock=1, fixed_durations=None, seed=None)
    settings = make_settings(emulator, tmp_path)
    async with PiAPIClient(settings) as client:
        task = await client.create(VideoRequest(prompt="x"))
    emulator.stop()  # the get below finds nobody listening
    async with PiAPIClient(settings) as client:
        with pytest.raises(UpstreamUnavailableError) as caught:
            await client.get(task.task_id)
    assert caught.value.task_id == task.task_id
    assert "connection to PiAPI failed (ConnectError)" in caught.value.message
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_unknown_task_and_wrong_key_are_typed_errors(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emulator = make_emulator(clock=200, fixed_durations=None, seed=None)
    settings = make_settings(emulator, tmp_path)
    async with PiAPIClient(settings) as client:
        with pytest.raises(TaskNotFoundError) as missing:
            await client.get("00000000-0000-4000-8000-000000000000")
    wrong = make_settings(emulator, tmp_path, PIAPI_API_KEY="sk-wrong")
    async with PiAPIClient(wrong) as client:
        with pytest.raises(AuthenticationError):
            await client.create(VideoRequest(prompt="x"))
    assert missing.value.task_id == "00000000-0000-4000-8000-000000000000"


# a view paying with a caller's own key


async def test_a_view_with_its_own_key_uses_the_parent_connections_and_never_closes_them(
    client: PiAPIClient,
) -> None:
    await client.create(VideoRequest(prompt="x"))  # the parent's client is built before the view
    view = client.with_key(SecretStr("sk-wrong"))
    async with view:
        with pytest.raises(AuthenticationError):
            await view.create(VideoRequest(prompt="x"))  # the view's key, not the parent's
    assert view._http() is client._http()  # one pool: the view built nothing of its own
    assert (await client.create(VideoRequest(prompt="x"))).task_id  # still open


async def test_a_view_is_closed_with_its_parent(emulator: Emulator, tmp_path: Path) -> None:
    async with PiAPIClient(make_settings(emulator, tmp_path)) as parent:
        view = parent.with_key(SecretStr("sk-caller"))
    with pytest.raises(RuntimeError, match="the PiAPI client is closed"):
        await view.account()


# account and upload: safe to repeat


async def test_a_failed_account_read_is_retryable_and_keeps_its_cause(
    client: PiAPIClient, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("account", "truncate"))
    with pytest.raises(UpstreamUnavailableError) as cut:
        await client.account()
    emulator.add_fault(Fault("account", "malformed"))
    with pytest.raises(MalformedResponseError) as garbled:
        await client.account()
    assert "account endpoint did not answer (RemoteProtocolError)" in cut.value.message
    assert isinstance(cut.value.__cause__, httpx.RemoteProtocolError)
    assert isinstance(garbled.value.__cause__, json.JSONDecodeError)
    assert "equivalent_in_usd" in await client.account()  # the fault passed


@pytest.mark.parametrize(
    ("fault", "error", "words", "cause"),
    [
        (Fault("upload", "truncate"), UpstreamUnavailableError, "upload to PiAPI failed",
         httpx.RemoteProtocolError),
        (Fault("upload", "malformed"), MalformedResponseError, "unreadable", json.JSONDecodeError),
        (Fault("upload", "malformed", body={"code": 200, "data": {"url": "ftp://x"}}),
         MalformedResponseError, "carried no URL", None),
        (Fault("upload", "status", status=403), AuthenticationError, "Insufficient plan level",
         None),
    ],
    ids=["truncated", "garbled", "no-url", "403"],
)  # fmt: skip
async def test_a_failed_upload_is_its_kind_and_keeps_its_cause(
    client: PiAPIClient,
    emulator: Emulator,
    fault: Fault,
    error: type[HailuoError],
    words: str,
    cause: type[BaseException] | None,
) -> None:
    emulator.add_fault(fault)
    with pytest.raises(HailuoError) as caught:
        await client.upload("image.png", b"\x89PNG not really")
    assert type(caught.value) is error and words in caught.value.message
    if cause is None:
        assert caught.value.__cause__ is None
    else:
        assert isinstance(caught.value.__cause__, cause)
    assert requests_to(emulator, "upload") == 1


# The gate


async def test_the_gate_lets_limit_requests_through_and_times_the_rest_out_as_a_pool() -> None:
    gate = RequestGate(1, wait_s=0.05)
    async with gate.slot():
        with pytest.raises(httpx.PoolTimeout) as caught:
            async with gate.slot():
                pass
    assert isinstance(caught.value.__cause__, TimeoutError)
    async with gate.slot():
        pass  # released: the next one gets through
