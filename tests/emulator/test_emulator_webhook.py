"""Webhooks: POSTed when a task ends, with the secret header, retried after failures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from hailuo_mcp.emulator import Emulator

pytestmark = pytest.mark.emulator(webhook_attempts=3, webhook_interval_s=5.0)


@dataclass
class Receiver:
    """A webhook endpoint that answers scripted statuses (then 200) and records requests."""

    answers: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    async def hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.json()))
        return Response(status_code=self.answers.pop(0) if self.answers else 200)


@pytest.fixture
def receiver(serve_app: Callable[[ASGIApp], str]) -> Receiver:
    """A running webhook receiver."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    receiver.url = serve_app(app) + "/hook"
    return receiver


def create_with_hook(client: httpx.Client, endpoint: str, secret: str = "") -> str:
    """Create a task whose webhook points at ``endpoint``; return its id."""
    payload = {
        "model": "hailuo",
        "task_type": "video_generation",
        "input": {"prompt": "autumn wind"},
        "config": {"webhook_config": {"endpoint": endpoint, "secret": secret}},
    }
    response = client.post("/api/v1/task", json=payload)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["task_id"]
    return task_id


def test_a_completed_task_is_posted_once_with_the_secret_header(
    emulator: Emulator, emulator_client: httpx.Client, receiver: Receiver
) -> None:
    task_id = create_with_hook(emulator_client, receiver.url, secret="s3cret")
    emulator.advance(50)
    assert emulator.webhook_deliveries == []  # still processing: nothing to tell yet
    emulator.advance(30)
    (delivery,) = emulator.wait_for_deliveries(1)
    endpoint, headers, body, status_code = delivery
    assert (endpoint, status_code) == (receiver.url, 200)
    assert headers["x-webhook-secret"] == "s3cret"
    assert set(body) == {"timestamp", "data"}
    assert isinstance(body["timestamp"], int)
    assert abs(body["timestamp"] - emulator.now()) < 2
    assert body["data"]["task_id"] == task_id
    assert body["data"]["status"] == "completed"
    assert body["data"]["config"]["webhook_config"]["secret"] == "s3cret"
    ((received_headers, received_body),) = receiver.received
    assert received_headers["x-webhook-secret"] == "s3cret"
    assert received_headers["content-type"] == "application/json"
    assert received_body == body
    emulator.advance(100)
    with pytest.raises(TimeoutError):
        emulator.wait_for_deliveries(2, timeout=0.1)  # delivered once, never again


def test_no_secret_means_no_secret_header(
    emulator: Emulator, emulator_client: httpx.Client, receiver: Receiver
) -> None:
    create_with_hook(emulator_client, receiver.url)
    emulator.advance(100)
    (delivery,) = emulator.wait_for_deliveries(1)
    assert "x-webhook-secret" not in delivery.headers


def test_a_non_2xx_answer_is_retried_after_the_interval(
    emulator: Emulator, emulator_client: httpx.Client, receiver: Receiver
) -> None:
    receiver.answers = [500]
    create_with_hook(emulator_client, receiver.url, secret="s")
    emulator.advance(100)
    emulator.wait_for_deliveries(1)
    emulator.advance(4)
    with pytest.raises(TimeoutError):
        emulator.wait_for_deliveries(2, timeout=0.1)  # the retry waits 5 emulated seconds
    emulator.advance(1.5)
    deliveries = emulator.wait_for_deliveries(2)
    assert [d.status_code for d in deliveries] == [500, 200]
    assert all(d.headers["x-webhook-secret"] == "s" for d in deliveries)
    assert deliveries[1].body["timestamp"] >= deliveries[0].body["timestamp"] + 5
    assert len(receiver.received) == 2


def test_delivery_gives_up_after_the_configured_attempts(
    emulator: Emulator, emulator_client: httpx.Client, receiver: Receiver
) -> None:
    receiver.answers = [503, 503, 503, 503]
    create_with_hook(emulator_client, receiver.url)
    emulator.advance(100)
    for attempt in (1, 2, 3):
        emulator.wait_for_deliveries(attempt)
        emulator.advance(6)
    with pytest.raises(TimeoutError):
        emulator.wait_for_deliveries(4, timeout=0.1)
    assert [d.status_code for d in emulator.webhook_deliveries] == [503, 503, 503]


def test_an_unreachable_endpoint_is_recorded_without_a_status_and_retried(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    create_with_hook(emulator_client, "http://127.0.0.1:9/hook")  # discard port: refused
    emulator.advance(100)
    emulator.wait_for_deliveries(1)
    emulator.advance(6)
    deliveries = emulator.wait_for_deliveries(2)
    assert [d.status_code for d in deliveries] == [None, None]


def test_a_failed_task_is_posted_too(
    emulator: Emulator, emulator_client: httpx.Client, receiver: Receiver
) -> None:
    emulator.fail_next_tasks(message="generation failed")
    create_with_hook(emulator_client, receiver.url)
    emulator.advance(100)
    (delivery,) = emulator.wait_for_deliveries(1)
    assert delivery.body["data"]["status"] == "failed"
    assert delivery.body["data"]["error"]["message"] == "generation failed"


def test_a_fast_clock_delivers_without_explicit_advances(
    fast_emulator: Emulator, fast_emulator_client: httpx.Client, receiver: Receiver
) -> None:
    create_with_hook(fast_emulator_client, receiver.url)
    (delivery,) = fast_emulator.wait_for_deliveries(1)
    assert delivery.status_code == 200
