"""The emulator enforces every input rule of PiAPI's Hailuo page with a 400 naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hailuo_mcp.emulator import Emulator

pytestmark = pytest.mark.emulator(check_images=False)  # syntax rules only: IMAGE is never fetched

IMAGE = "https://example.com/cat.png"


def body(**input_fields: Any) -> dict[str, Any]:
    """A create body for v2.3 text-to-video with ``input`` fields overridden (None drops one)."""
    fields: dict[str, Any] = {"prompt": "autumn wind", "model": "v2.3"} | input_fields
    return {
        "model": "hailuo",
        "task_type": "video_generation",
        "input": {key: value for key, value in fields.items() if value is not None},
    }


ACCEPTED = [
    pytest.param(body(prompt="x" * 2000), id="prompt-2000-chars"),
    pytest.param(body(prompt="é" * 2000), id="prompt-2000-multibyte-chars"),
    pytest.param(body(duration=6), id="duration-6"),
    pytest.param(body(duration=10), id="duration-10"),
    pytest.param(body(resolution=768), id="resolution-768"),
    pytest.param(body(resolution=1080), id="resolution-1080"),
    pytest.param(body(resolution=1080, duration=6), id="1080-with-6s"),
    pytest.param(body(model="v2.3-fast", image_url=IMAGE), id="fast-with-image"),
    pytest.param(body(image_url=IMAGE), id="v2.3-with-image"),
    pytest.param(body(image_url=""), id="empty-image-url-means-none"),
    pytest.param(body(expand_prompt=False), id="expand-prompt-false"),
    pytest.param(body(model=None), id="model-absent-defaults"),
]


@pytest.mark.parametrize("payload", ACCEPTED)
def test_create_accepts_every_boundary_inside_the_rules(
    emulator_client: httpx.Client, payload: dict[str, Any]
) -> None:
    response = emulator_client.post("/api/v1/task", json=payload)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "pending"


REJECTED = [
    pytest.param(body(prompt="x" * 2001), "input.prompt", "2000", id="prompt-2001-chars"),
    pytest.param(body(prompt="é" * 2001), "input.prompt", "2000", id="prompt-2001-multibyte"),
    pytest.param(body(prompt=None), "input.prompt", "required", id="prompt-missing"),
    pytest.param(body(prompt=""), "input.prompt", "required", id="prompt-empty"),
    pytest.param(body(prompt="   "), "input.prompt", "required", id="prompt-blank"),
    pytest.param(body(prompt=42), "input.prompt", "string", id="prompt-not-string"),
    pytest.param(body(model="v2.3-pro"), "input.model", "v2.3-fast", id="unknown-variant"),
    pytest.param(body(duration=7), "input.duration", "6 or 10", id="duration-7"),
    pytest.param(body(duration="6"), "input.duration", "integer", id="duration-string"),
    pytest.param(body(duration=6.0), "input.duration", "integer", id="duration-float"),
    pytest.param(body(duration=True), "input.duration", "integer", id="duration-bool"),
    pytest.param(body(resolution=720), "input.resolution", "768 or 1080", id="resolution-720"),
    pytest.param(body(resolution="1080"), "input.resolution", "integer", id="resolution-string"),
    pytest.param(
        body(resolution=1080, duration=10), "input.resolution", "duration 10", id="1080-with-10s"
    ),
    pytest.param(
        body(model="v2.3-fast", resolution=1080, duration=10, image_url=IMAGE),
        "input.resolution",
        "duration 10",
        id="fast-1080-with-10s",
    ),
    pytest.param(body(model="v2.3-fast"), "input.image_url", "image-to-video", id="fast-no-image"),
    pytest.param(
        body(model="v2.3-fast", image_url=""), "input.image_url", "required", id="fast-empty-image"
    ),
    pytest.param(body(expand_prompt="yes"), "input.expand_prompt", "boolean", id="expand-string"),
    pytest.param(body(image_url="ftp://x/y.png"), "input.image_url", "http", id="image-not-http"),
    pytest.param(body(image_url=5), "input.image_url", "string", id="image-not-string"),
]


@pytest.mark.parametrize(("payload", "field", "rule"), REJECTED)
def test_create_rejects_each_broken_rule_with_a_400_naming_field_and_rule(
    emulator: Emulator,
    emulator_client: httpx.Client,
    payload: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    response = emulator_client.post("/api/v1/task", json=payload)
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == 400
    assert answer["data"] is None
    assert field in answer["message"]
    assert rule in answer["message"]
    assert emulator.creates() == 1
    assert emulator.creates_recorded() == 0


ENVELOPE_REJECTED = [
    pytest.param({**body(), "model": "v2.3"}, "model", id="variant-at-top-level"),
    pytest.param({**body(), "model": "kling"}, "model", id="other-model"),
    pytest.param({k: v for k, v in body().items() if k != "model"}, "model", id="model-missing"),
    pytest.param({**body(), "task_type": "image_generation"}, "task_type", id="wrong-task-type"),
    pytest.param({**body(), "input": "autumn wind"}, "input", id="input-not-object"),
    pytest.param(
        {**body(), "config": {"service_mode": "private"}}, "config.service_mode", id="private-mode"
    ),
    pytest.param({**body(), "config": []}, "config", id="config-not-object"),
    pytest.param(
        {**body(), "config": {"webhook_config": {"endpoint": "not a url"}}},
        "config.webhook_config.endpoint",
        id="webhook-not-url",
    ),
    pytest.param([body()], "JSON object", id="body-not-object"),
]


@pytest.mark.parametrize(("payload", "field"), ENVELOPE_REJECTED)
def test_create_rejects_a_malformed_request_envelope(
    emulator_client: httpx.Client, payload: Any, field: str
) -> None:
    response = emulator_client.post("/api/v1/task", json=payload)
    assert response.status_code == 400
    assert field in response.json()["message"]


def test_create_rejects_a_body_that_is_not_json(emulator_client: httpx.Client) -> None:
    response = emulator_client.post("/api/v1/task", content=b"{not json")
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


def test_create_fills_every_input_default_and_echoes_public_mode(
    emulator_client: httpx.Client,
) -> None:
    payload = {"model": "hailuo", "task_type": "video_generation", "input": {"prompt": "sea"}}
    task = emulator_client.post("/api/v1/task", json=payload).json()["data"]
    assert task["input"] == {
        "duration": 6,
        "expand_prompt": True,
        "image_url": "",
        "model": "v2.3",
        "prompt": "sea",
        "resolution": 768,
    }
    assert task["config"] == {
        "service_mode": "public",
        "webhook_config": {"endpoint": "", "secret": ""},
    }


def test_create_accepts_public_service_mode_and_ignores_unknown_input_fields(
    emulator_client: httpx.Client,
) -> None:
    payload = body(negative_prompt="rain") | {"config": {"service_mode": "public"}}
    response = emulator_client.post("/api/v1/task", json=payload)
    assert response.status_code == 200
    assert "negative_prompt" not in response.json()["data"]["input"]
