"""Task objects, status over time, usage, account and the request log, as PiAPI answers them."""

from __future__ import annotations

import re
import ssl
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hailuo_mcp.emulator import Emulator
from tests.support import MANUAL, MakeEmulator, client_for

pytestmark = pytest.mark.emulator(check_images=False)  # fast tasks use a fake image URL

# The example request on PiAPI's Hailuo page and the `data` of its example response, verbatim.
EXAMPLE_REQUEST: dict[str, Any] = {
    "model": "hailuo",
    "task_type": "video_generation",
    "input": {
        "prompt": "autumn wind",
        "model": "v2.3",
        "expand_prompt": True,
        "duration": 6,
        "resolution": 768,
    },
    "config": {
        "service_mode": "public",
        "webhook_config": {
            "endpoint": "https://webhook.site/7b206bbd-089a-4c96-9cf7-5927c91bfcca",
            "secret": "",
        },
    },
}
EXAMPLE_DATA: dict[str, Any] = {
    "task_id": "4d5fe927-66ca-4614-ad53-73430dd1f965",
    "model": "hailuo",
    "task_type": "video_generation",
    "status": "completed",
    "config": {
        "service_mode": "public",
        "webhook_config": {
            "endpoint": "https://webhook.site/7b206bbd-089a-4c96-9cf7-5927c91bfcca",
            "secret": "",
        },
    },
    "input": {
        "duration": 6,
        "expand_prompt": True,
        "image_url": "",
        "model": "v2.3",
        "prompt": "autumn wind",
        "resolution": 768,
    },
    "output": {
        "video": "https://img.theapi.app/ephemeral/d9cb24bc-3166-41bc-9fe0-7cd7c9942b27.mp4"
    },
    "meta": {
        "created_at": "2026-01-25T13:52:23.125177638Z",
        "started_at": "2026-01-25T13:52:24.247634887Z",
        "ended_at": "2026-01-25T13:53:40.726939834Z",
        "usage": {"type": "llm", "frozen": 0, "consume": 2300000},
        "is_using_private_pool": False,
    },
    "detail": None,
    "logs": [],
    "error": {"code": 0, "raw_message": "", "message": "", "detail": None},
}
# The example request without its webhook.site endpoint: these tests never leave loopback.
REQUEST: dict[str, Any] = {**EXAMPLE_REQUEST, "config": {"service_mode": "public"}}
RFC3339_NS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$")
ZERO_TIME = "0001-01-01T00:00:00Z"


def shape(value: Any) -> Any:
    """The keys of ``value``, recursively, with leaves replaced by their JSON type."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def parse_ns(stamp: str) -> int:
    """Nanoseconds since the epoch from an RFC 3339 stamp with 9 fractional digits."""
    whole, fraction = stamp.rstrip("Z").split(".")
    seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1_000_000_000 + int(fraction)


def create(client: httpx.Client, **input_fields: Any) -> dict[str, Any]:
    """Create a task (example request with ``input`` overridden) and return its task object."""
    payload = {**REQUEST, "input": {**REQUEST["input"], **input_fields}}
    response = client.post("/api/v1/task", json=payload)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


def get(client: httpx.Client, task_id: str) -> dict[str, Any]:
    """GET a task and return its task object."""
    response = client.get(f"/api/v1/task/{task_id}")
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


def test_the_example_request_ends_in_a_task_shaped_field_for_field_like_the_example_answer(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    # The example's webhook.site endpoint becomes a closed loopback port: tests stay offline.
    hook = {"endpoint": "http://127.0.0.1:9/hook", "secret": ""}
    request = {**EXAMPLE_REQUEST, "config": {"service_mode": "public", "webhook_config": hook}}
    expected = {**EXAMPLE_DATA, "config": request["config"]}
    created = emulator_client.post("/api/v1/task", json=request).json()
    emulator.advance(80)
    answer = emulator_client.get(f"/api/v1/task/{created['data']['task_id']}").json()
    assert answer["code"] == 200
    assert answer["message"] == "success"
    data = answer["data"]
    assert shape(data) == shape(EXAMPLE_DATA)
    for key in ("model", "task_type", "status", "config", "input", "detail", "logs", "error"):
        assert data[key] == expected[key], key
    assert data["meta"]["usage"] == EXAMPLE_DATA["meta"]["usage"]
    assert data["meta"]["is_using_private_pool"] is False
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", data["task_id"]
    )
    assert re.fullmatch(rf"{emulator.url}/ephemeral/[0-9a-f-]{{36}}\.mp4", data["output"]["video"])


def test_a_task_goes_pending_processing_completed_with_timestamps_set_only_when_reached(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    task = create(emulator_client)
    meta = task["meta"]
    assert task["status"] == "pending"
    assert task["output"] is None
    assert RFC3339_NS.match(meta["created_at"])
    assert meta["started_at"] == ZERO_TIME and meta["ended_at"] == ZERO_TIME

    emulator.advance(1.5)
    task = get(emulator_client, task["task_id"])
    assert task["status"] == "processing"
    assert RFC3339_NS.match(task["meta"]["started_at"])
    assert task["meta"]["ended_at"] == ZERO_TIME
    assert task["output"] is None

    emulator.advance(76)
    task = get(emulator_client, task["task_id"])
    assert task["status"] == "completed"
    created, started, ended = (
        parse_ns(task["meta"][key]) for key in ("created_at", "started_at", "ended_at")
    )
    # The fixture's fixed durations: 1 s queued, 76 s generating (to the nanosecond).
    assert started - created == 1_000_000_000
    assert ended - started == 76_000_000_000


PRICES = [
    ("v2.3", 6, 768, 2_300_000),
    ("v2.3", 10, 768, 4_500_000),
    ("v2.3", 6, 1080, 4_000_000),
    ("v2.3-fast", 6, 768, 1_600_000),
    ("v2.3-fast", 10, 768, 2_600_000),
    ("v2.3-fast", 6, 1080, 2_600_000),
]


@pytest.mark.parametrize(("model", "duration", "resolution", "points"), PRICES)
def test_usage_freezes_the_price_at_create_and_consumes_it_on_completion(
    emulator: Emulator,
    emulator_client: httpx.Client,
    model: str,
    duration: int,
    resolution: int,
    points: int,
) -> None:
    image = "http://127.0.0.1:9/cat.png" if model == "v2.3-fast" else ""
    task = create(
        emulator_client, model=model, duration=duration, resolution=resolution, image_url=image
    )
    assert task["meta"]["usage"] == {"type": "llm", "frozen": points, "consume": 0}
    emulator.advance(2)
    assert get(emulator_client, task["task_id"])["meta"]["usage"]["frozen"] == points
    emulator.advance(10_000)
    usage = get(emulator_client, task["task_id"])["meta"]["usage"]
    assert usage == {"type": "llm", "frozen": 0, "consume": points}


def test_account_balance_freezes_then_spends_the_price_of_a_completed_task(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    before = emulator_client.get("/account/info").json()["data"]
    task = create(emulator_client)
    during = emulator_client.get("/account/info").json()["data"]
    emulator.advance(100)
    get(emulator_client, task["task_id"])
    after = emulator_client.get("/account/info").json()["data"]
    assert during["credit_pack_info"]["frozen_credits"] == 2_300_000
    assert during["equivalent_in_usd"] == before["equivalent_in_usd"]
    assert after["credit_pack_info"]["frozen_credits"] == 0
    assert after["equivalent_in_usd"] == pytest.approx(before["equivalent_in_usd"] - 0.23)
    assert after["credit_pack_info"]["available_credits"] == (
        before["credit_pack_info"]["available_credits"] - 2_300_000
    )
    assert after["account_name"] == "emulator"


@pytest.mark.emulator(balance_usd=0.3, fixed_durations=None, seed=None)
def test_a_create_the_balance_cannot_cover_is_refused_with_402_and_records_nothing(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    assert create(emulator_client)["status"] == "pending"
    refused = emulator_client.post("/api/v1/task", json=REQUEST)
    assert refused.status_code == 402
    assert "credit" in refused.json()["message"]
    assert emulator.creates() == 2
    assert emulator.creates_recorded() == 1


@pytest.mark.parametrize("headers", [{}, {"x-api-key": ""}, {"x-api-key": "wrong"}])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/task"),
        ("GET", "/api/v1/task/4d5fe927-66ca-4614-ad53-73430dd1f965"),
        ("GET", "/account/info"),
        ("POST", "/api/ephemeral_resource"),
    ],
)
def test_a_missing_or_wrong_api_key_gets_401_in_an_envelope(
    emulator: Emulator, tls_context: ssl.SSLContext, headers: dict[str, str], method: str, path: str
) -> None:
    with httpx.Client(base_url=emulator.url, verify=tls_context) as client:
        response = client.request(method, path, headers=headers, json=REQUEST)
    assert response.status_code == 401
    assert response.json() == {"code": 401, "data": None, "message": "Invalid API key"}
    assert emulator.creates_recorded() == 0


@pytest.mark.emulator(api_key=None, fixed_durations=None, seed=None)
def test_any_non_empty_key_is_accepted_when_no_key_is_configured(
    emulator: Emulator, tls_context: ssl.SSLContext
) -> None:
    with httpx.Client(base_url=emulator.url, verify=tls_context) as client:
        assert client.get("/account/info", headers={"x-api-key": "anything"}).status_code == 200
        assert client.get("/account/info").status_code == 401


def test_an_unknown_task_id_gets_404_task_not_found(emulator_client: httpx.Client) -> None:
    response = emulator_client.get("/api/v1/task/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "data": None, "message": "task not found"}


@pytest.mark.parametrize("output_key", ["video", "video_url", "download_url"])
def test_envelope_code_and_output_key_follow_the_config(
    make_emulator: MakeEmulator, tls_context: ssl.SSLContext, output_key: Any
) -> None:
    emu = make_emulator(
        clock=MANUAL,
        envelope_code=0,
        output_key=output_key,
        fixed_durations=(1, 76),
        empty_output_before_completion=True,
        seed=None,
    )
    with client_for(emu, tls_context) as client:
        answer = client.post("/api/v1/task", json=REQUEST).json()
        assert answer["code"] == 0
        assert answer["data"]["output"] == {output_key: ""}
        emu.advance(100)
        task = emu.task(answer["data"]["task_id"])
        assert list(task["output"]) == [output_key]
        assert client.get(task["output"][output_key]).headers["content-type"] == "video/mp4"


def test_the_output_url_serves_the_playable_sample_mp4(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    task = create(emulator_client)
    emulator.advance(100)
    url = get(emulator_client, task["task_id"])["output"]["video"]
    with httpx.Client(trust_env=False, verify=False) as anonymous:  # CDN links need no key
        video = anonymous.get(url)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert int(video.headers["content-length"]) == len(video.content)
    assert 10_000 < len(video.content) < 300_000
    assert video.content[4:8] == b"ftyp"
    assert b"moov" in video.content[:4096]  # +faststart: the index comes first
    assert b"avc1" in video.content


def test_a_synthetic_output_streams_exactly_the_configured_size(
    make_emulator: MakeEmulator, tls_context: ssl.SSLContext
) -> None:
    size = 5 * 1024 * 1024 + 123
    emu = make_emulator(clock=MANUAL, output_size=size, fixed_durations=(0, 1), seed=None)
    with client_for(emu, tls_context) as client:
        task_id = client.post("/api/v1/task", json=REQUEST).json()["data"]["task_id"]
        emu.advance(2)
        url = emu.task(task_id)["output"]["video"]
        received = 0
        with client.stream("GET", url) as response:
            assert int(response.headers["content-length"]) == size
            for chunk in response.iter_bytes():
                if received == 0:
                    assert chunk[4:8] == b"ftyp"
                received += len(chunk)
    assert received == size


def test_the_request_log_records_route_task_id_and_status(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    task_id = create(emulator_client)["task_id"]
    get(emulator_client, task_id)
    get(emulator_client, task_id)
    emulator_client.get("/api/v1/task/unknown")
    emulator_client.post("/api/v1/task", json={"model": "hailuo"})
    emulator_client.get("/account/info")
    assert emulator.creates() == 2
    assert emulator.creates_recorded() == 1
    assert emulator.gets(task_id) == 2
    assert emulator.gets() == 3
    summary = [(e.method, e.route, e.task_id, e.status_code) for e in emulator.log]
    assert summary == [
        ("POST", "create", task_id, 200),
        ("GET", "get", task_id, 200),
        ("GET", "get", task_id, 200),
        ("GET", "get", "unknown", 404),
        ("POST", "create", None, 400),
        ("GET", "account", None, 200),
    ]
    assert emulator.log[1].path == f"/api/v1/task/{task_id}"
    emulator.reset()
    assert (emulator.log, emulator.creates(), emulator.gets(), emulator.task_ids()) == (
        [],
        0,
        0,
        [],
    )


def test_emu_task_answers_like_get_and_raises_for_an_unknown_id(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    task_id = create(emulator_client)["task_id"]
    assert emulator.task(task_id) == get(emulator_client, task_id)
    with pytest.raises(KeyError):
        emulator.task("nope")
