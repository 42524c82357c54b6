"""The upload endpoint stores base64 files, serves them back, and enforces its limits."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from hailuo_mcp.emulator import Emulator, Fault

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def upload(client: httpx.Client, emulator: Emulator, **body: Any) -> httpx.Response:
    """POST ``body`` to the emulator's upload URL."""
    return client.post(emulator.upload_url, json=body)


def test_an_upload_answers_a_url_that_serves_the_same_bytes_and_type(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    data = PNG_MAGIC + b"rest of a png"
    response = upload(
        emulator_client,
        emulator,
        file_name="cat.png",
        file_data=base64.b64encode(data).decode(),
    )
    assert response.status_code == 200
    answer = response.json()
    assert (answer["code"], answer["message"]) == (200, "success")
    url = answer["data"]["url"]
    assert url.startswith(f"{emulator.url}/ephemeral/uploads/") and url.endswith(".png")
    with httpx.Client(trust_env=False, verify=False) as anonymous:
        served = anonymous.get(url)
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == "image/png"
    assert emulator.log[-1].route == "upload_file"


def test_a_data_uri_prefix_is_accepted(emulator: Emulator, emulator_client: httpx.Client) -> None:
    encoded = base64.b64encode(b"\xff\xd8\xff jpeg").decode()
    response = upload(
        emulator_client,
        emulator,
        file_name="Photo.JPG",
        file_data=f"data:image/jpeg;base64,{encoded}",
    )
    assert response.status_code == 200
    url = response.json()["data"]["url"]
    assert emulator_client.get(url).content == b"\xff\xd8\xff jpeg"
    assert emulator_client.get(url).headers["content-type"] == "image/jpeg"


def test_a_file_of_exactly_10_mb_is_accepted_and_one_byte_more_is_refused(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    limit = 10 * 1024 * 1024
    ok = upload(
        emulator_client,
        emulator,
        file_name="big.mp4",
        file_data=base64.b64encode(bytes(limit)).decode(),
    )
    assert ok.status_code == 200
    too_big = upload(
        emulator_client,
        emulator,
        file_name="big.mp4",
        file_data=base64.b64encode(bytes(limit + 1)).decode(),
    )
    assert too_big.status_code == 400
    assert "10 MB" in too_big.json()["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param({"file_name": "x.png", "file_data": "not base64!"}, "base64", id="bad-b64"),
        pytest.param({"file_name": "x.png", "file_data": "QUJ"}, "base64", id="bad-padding"),
        pytest.param({"file_name": "x.exe", "file_data": "QUJD"}, "extension", id="bad-ext"),
        pytest.param({"file_name": "png", "file_data": "QUJD"}, "extension", id="no-ext"),
        pytest.param({"file_name": "a" * 125 + ".png", "file_data": "QUJD"}, "128", id="name-129"),
        pytest.param({"file_data": "QUJD"}, "file_name", id="name-missing"),
        pytest.param({"file_name": "x.png"}, "file_data", id="data-missing"),
        pytest.param({"file_name": "x.png", "file_data": ""}, "file_data", id="data-empty"),
        pytest.param(
            {"file_name": "x.png", "file_data": "data:image/png,QUJD"}, "base64", id="uri-no-b64"
        ),
    ],
)
def test_an_upload_breaking_a_rule_is_refused_with_400(
    emulator: Emulator, emulator_client: httpx.Client, body: dict[str, Any], words: str
) -> None:
    response = upload(emulator_client, emulator, **body)
    assert response.status_code == 400
    assert words in response.json()["message"]


def test_a_file_name_of_128_characters_is_accepted(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    response = upload(emulator_client, emulator, file_name="a" * 124 + ".png", file_data="QUJD")
    assert response.status_code == 200


def test_an_upload_fault_answers_403_insufficient_plan_level(
    emulator: Emulator, emulator_client: httpx.Client
) -> None:
    emulator.add_fault(Fault("upload", "status", status=403))
    response = upload(emulator_client, emulator, file_name="x.png", file_data="QUJD")
    assert response.status_code == 403
    assert response.json()["message"] == "Insufficient plan level"


def test_an_upload_without_the_key_is_refused(emulator: Emulator) -> None:
    with httpx.Client(trust_env=False, verify=False) as anonymous:
        response = anonymous.post(
            emulator.upload_url, json={"file_name": "x.png", "file_data": "QUJD"}
        )
    assert response.status_code == 401


def test_an_unknown_upload_is_404(emulator_client: httpx.Client) -> None:
    assert emulator_client.get("/ephemeral/uploads/nope.png").status_code == 404
