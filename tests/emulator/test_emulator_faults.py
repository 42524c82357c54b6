"""Every scripted fault behaves like the upstream failure it stands for."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from hailuo_mcp.emulator import Emulator, Fault

REQUEST: dict[str, Any] = {
    "model": "hailuo",
    "task_type": "video_generation",
    "input": {"prompt": "autumn wind", "model": "v2.3", "duration": 6, "resolution": 768},
}


def create_id(client: httpx.Client) -> str:
    """Create a task and return its id."""
    response = client.post("/api/v1/task", json=REQUEST)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["task_id"]
    return task_id


@pytest.mark.parametrize(
    ("status", "body_key"),
    [
        (401, "message"),
        (402, "message"),
        (403, "message"),
        (429, "error"),
        (500, "message"),
        (503, "description"),
    ],
)
def test_a_status_fault_answers_that_status_with_an_upstream_like_body_and_records_no_task(
    emulator: Emulator, emulator_client: httpx.Client, status: int, body_key: str
) -> None:
    emulator.add_fault(Fault("create", "status", status=status))
    response = emulator_client.post("/api/v1/task", json=REQUEST)
    assert response.status_code == status
    assert body_key in response.json()
    assert "retry-after" not in response.headers
    assert emulator.creates() == 1
    assert emulator.creates_recorded() == 0
    assert emulator.log[0].fault == "status"
    # The fault is used up: the next create goes through.
    create_id(emulator_client)
    assert emulator.creates_recorded() == 1


def test_a_402_fault_says_insufficient_credits(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("create", "status", status=402))
    response = emulator_client.post("/api/v1/task", json=REQUEST)
    assert response.json() == {"code": 402, "message": "insufficient credits"}


def test_a_502_fault_answers_a_proxy_html_page(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("get", "status", status=502))
    response = emulator_client.get("/api/v1/task/x")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_a_429_fault_carries_retry_after_when_given(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("create", "status", status=429, retry_after=7))
    response = emulator_client.post("/api/v1/task", json=REQUEST)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


def test_a_status_fault_applies_times_over_then_stops(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    task_id = create_id(emulator_client)
    emulator.add_fault(Fault("get", "status", times=2, status=500, body={"oops": True}))
    codes = [emulator_client.get(f"/api/v1/task/{task_id}").status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert emulator.gets(task_id) == 3


def test_an_any_route_fault_hits_whatever_request_comes_next(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("any", "status", status=503))
    assert emulator_client.get("/account/info").status_code == 503
    assert emulator_client.get("/account/info").status_code == 200


def test_a_fault_on_one_route_leaves_other_routes_alone(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("get", "status", status=500))
    create_id(emulator_client)
    assert emulator_client.get("/account/info").status_code == 200
    assert emulator_client.get("/api/v1/task/x").status_code == 500


def test_a_hang_is_ended_by_the_client_timeout_and_records_no_task(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("create", "hang"))
    with pytest.raises(httpx.ReadTimeout):
        emulator_client.post("/api/v1/task", json=REQUEST, timeout=0.2)
    assert emulator.creates() == 1
    assert emulator.creates_recorded() == 0
    # The server notices the client left and logs the request as unanswered.
    emulator.wait_until(lambda: emulator.log)
    (hang,) = emulator.log
    assert (hang.route, hang.fault, hang.status_code) == ("create", "hang", None)


def test_a_hang_with_a_delay_answers_normally_afterwards(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("create", "hang", delay=0.05))
    response = emulator_client.post("/api/v1/task", json=REQUEST, timeout=5)
    assert response.status_code == 200
    assert emulator.creates_recorded() == 1


def test_a_malformed_fault_answers_200_with_a_body_that_is_not_json(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("create", "malformed"))
    response = emulator_client.post("/api/v1/task", json=REQUEST)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert emulator.creates_recorded() == 0


def test_drop_after_record_records_the_task_but_the_client_gets_a_transport_error(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("create", "drop_after_record"))
    with pytest.raises(httpx.RemoteProtocolError):
        emulator_client.post("/api/v1/task", json=REQUEST)
    assert emulator.creates() == 1
    assert emulator.creates_recorded() == 1
    (task_id,) = emulator.task_ids()
    assert emulator.log[0].task_id == task_id
    assert emulator.log[0].status_code is None
    # The ambiguous task is real: it progresses and is visible to anyone who knows its id.
    emulator.advance(100)
    answer = emulator_client.get(f"/api/v1/task/{task_id}").json()
    assert answer["data"]["status"] == "completed"


def test_a_truncated_get_answer_raises_a_transport_error(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    task_id = create_id(emulator_client)
    emulator.add_fault(Fault("get", "truncate"))
    with pytest.raises(httpx.RemoteProtocolError):
        emulator_client.get(f"/api/v1/task/{task_id}")
    assert emulator_client.get(f"/api/v1/task/{task_id}").status_code == 200


ROUTE_CALLS = {
    "get": ("GET", "/api/v1/task/00000000-0000-4000-8000-000000000000", None),
    "account": ("GET", "/account/info", None),
    "upload": ("POST", "/api/ephemeral_resource", {"file_name": "x.png", "file_data": "QUJD"}),
    "create": ("POST", "/api/v1/task", REQUEST),
}


def call(client: httpx.Client, route: str, timeout: float = 5.0) -> httpx.Response:
    """Send the usual request of ``route``."""
    method, path, body = ROUTE_CALLS[route]
    return client.request(method, path, json=body, timeout=timeout)


@pytest.mark.parametrize("route", ["create", "get", "account", "upload"])
def test_malformed_json_can_hit_every_json_route(
    emulator: Emulator, emulator_client: httpx.Client, route: Any
) -> None:
    emulator.add_fault(Fault(route, "malformed"))
    response = call(emulator_client, route)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.parametrize("route", ["get", "account", "upload"])
def test_a_truncated_answer_on_any_json_route_raises_a_transport_error(
    emulator: Emulator, emulator_client: httpx.Client, route: Any
) -> None:
    emulator.add_fault(Fault(route, "truncate"))
    with pytest.raises(httpx.RemoteProtocolError):
        call(emulator_client, route)
    assert emulator.log[0].status_code is None


@pytest.mark.parametrize("route", ["get", "account", "upload"])
def test_a_hang_on_any_route_ends_with_the_client_timeout(
    emulator: Emulator, emulator_client: httpx.Client, route: Any
) -> None:
    emulator.add_fault(Fault(route, "hang"))
    with pytest.raises(httpx.ReadTimeout):
        call(emulator_client, route, timeout=0.1)
    assert call(emulator_client, route).status_code in (200, 404)


def test_a_task_scripted_to_fail_ends_failed_with_the_error_and_charges_nothing(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.fail_next_tasks(1, code=10003, message="content moderation", raw_message="nsfw")
    failing, fine = create_id(emulator_client), create_id(emulator_client)
    emulator.advance(2)
    assert emulator.task(failing)["status"] == "processing"
    emulator.advance(100)
    task = emulator_client.get(f"/api/v1/task/{failing}").json()["data"]
    assert task["status"] == "failed"
    assert task["error"] == {
        "code": 10003,
        "raw_message": "nsfw",
        "message": "content moderation",
        "detail": None,
    }
    assert task["meta"]["usage"] == {"type": "llm", "frozen": 0, "consume": 0}
    assert task["meta"]["ended_at"] != "0001-01-01T00:00:00Z"
    assert task["output"] is None
    assert emulator.task(fine)["status"] == "completed"
    account = emulator_client.get("/account/info").json()["data"]
    assert account["credit_pack_info"]["used_credits"] == 2_300_000


def test_a_stuck_task_stays_processing_forever_with_credits_frozen(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.stick_next_tasks()
    task_id = create_id(emulator_client)
    emulator.advance(1_000_000)
    task = emulator.task(task_id)
    assert task["status"] == "processing"
    assert task["meta"]["ended_at"] == "0001-01-01T00:00:00Z"
    assert task["meta"]["usage"]["frozen"] == 2_300_000


def test_scripted_outcomes_apply_to_tasks_in_the_order_they_were_queued(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.stick_next_tasks(1)
    emulator.fail_next_tasks(1)
    ids = [create_id(emulator_client) for _ in range(3)]
    emulator.advance(1000)
    assert [emulator.task(i)["status"] for i in ids] == ["processing", "failed", "completed"]


def completed_output(emulator: Emulator, client: httpx.Client) -> str:
    """Create a task, let it complete, and return its output URL."""
    task_id = create_id(client)
    emulator.advance(100)
    url: str = emulator.task(task_id)["output"]["video"]
    return url


def test_a_not_found_download_fault_answers_404_like_an_expired_file(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    url = completed_output(emulator, emulator_client)
    emulator.add_fault(Fault("download", "not_found"))
    assert emulator_client.get(url).status_code == 404
    assert emulator_client.get(url).status_code == 200


def test_a_truncated_download_promises_the_full_length_and_breaks_off_halfway(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    url = completed_output(emulator, emulator_client)
    emulator.add_fault(Fault("download", "truncate"))
    received = 0
    with pytest.raises(httpx.RemoteProtocolError), emulator_client.stream("GET", url) as response:
        assert response.status_code == 200
        full = int(response.headers["content-length"])
        for chunk in response.iter_bytes():
            received += len(chunk)
    assert 0 < received < full


def test_a_download_hang_is_ended_by_the_client_timeout(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    url = completed_output(emulator, emulator_client)
    emulator.add_fault(Fault("download", "hang"))
    with pytest.raises(httpx.ReadTimeout):
        emulator_client.get(url, timeout=0.1)


def test_an_unknown_output_file_is_404(emulator_client: httpx.Client) -> None:
    assert emulator_client.get("/ephemeral/nope.mp4").status_code == 404


@pytest.mark.parametrize(
    "arguments",
    [
        {"route": "create", "kind": "truncate"},
        {"route": "get", "kind": "drop_after_record"},
        {"route": "create", "kind": "not_found"},
        {"route": "download", "kind": "malformed"},
        {"route": "create", "kind": "status"},
        {"route": "create", "kind": "status", "status": 200},
        {"route": "create", "kind": "status", "status": 500, "times": 0},
        {"route": "create", "kind": "explode"},
    ],
)
def test_a_fault_that_cannot_happen_is_refused_when_scripted(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fault(**arguments)
