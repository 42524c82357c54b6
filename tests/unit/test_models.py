"""The seed's input rules, as our validation applies them before any upstream call."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hailuo_mcp.models import Task, TaskStatus, VideoRequest, is_valid_task_id, parse_time

VALID: list[dict[str, Any]] = [
    {"prompt": "a" * 2000},
    {"prompt": "x", "duration": 10, "resolution": 768},
    {"prompt": "x", "duration": 6, "resolution": 1080},
    {"prompt": "x", "model": "v2.3-fast", "image_url": "https://example.com/a.png"},
    {"prompt": "line one\nline two\ttabbed"},
    {"prompt": "emoji 🦊 and accents é, CJK 狐狸"},
    {"prompt": "x", "expand_prompt": False},
]

INVALID: list[tuple[dict[str, Any], str]] = [
    ({"prompt": "a" * 2001}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "nul\x00byte"}, "prompt"),
    ({"prompt": "x", "duration": 7}, "duration"),
    ({"prompt": "x", "duration": 5}, "duration"),
    ({"prompt": "x", "resolution": 720}, "resolution"),
    ({"prompt": "x", "resolution": 1080, "duration": 10}, "resolution=1080 with duration=10"),
    ({"prompt": "x", "model": "v2.2"}, "model"),
    ({"prompt": "x", "colour": "red"}, "colour"),
]


@pytest.mark.parametrize("fields", VALID)
def test_requests_within_the_seed_rules_are_accepted(fields: dict[str, Any]) -> None:
    request = VideoRequest(**fields)
    assert request.upstream_input()["prompt"] == fields["prompt"]


@pytest.mark.parametrize(("fields", "named"), INVALID)
def test_requests_breaking_a_rule_are_rejected_naming_the_field(
    fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        VideoRequest(**fields)
    assert named in str(caught.value)


def test_prompt_length_counts_characters_not_bytes() -> None:
    request = VideoRequest(prompt="狐" * 2000)  # 6000 bytes in UTF-8, 2000 characters
    assert len(request.prompt) == 2000


def test_upstream_input_carries_the_variant_in_input_model() -> None:
    body = VideoRequest(prompt="autumn wind").upstream_input()
    assert body == {
        "prompt": "autumn wind",
        "model": "v2.3",
        "expand_prompt": True,
        "duration": 6,
        "resolution": 768,
    }


@pytest.mark.parametrize(
    ("task_id", "ok"),
    [
        ("4d5fe927-66ca-4614-ad53-73430dd1f965", True),
        ("abc_DEF-123", True),
        ("../../etc/passwd", False),
        ("a/b", False),
        ("", False),
        ("a\x00b", False),
        (".hidden", False),
        ("x" * 129, False),
    ],
)
def test_only_plain_task_ids_are_accepted(task_id: str, ok: bool) -> None:
    assert is_valid_task_id(task_id) is ok


def test_task_reads_the_output_url_from_video_then_video_url_then_download_url() -> None:
    base = {"task_id": "t1", "status": "completed"}
    assert Task.from_upstream({**base, "output": {"video": "https://a/v.mp4"}}).video_url == (
        "https://a/v.mp4"
    )
    assert Task.from_upstream({**base, "output": {"video_url": "https://a/u.mp4"}}).video_url == (
        "https://a/u.mp4"
    )
    assert (
        Task.from_upstream({**base, "output": {"download_url": "https://a/d.mp4"}}).video_url
        == "https://a/d.mp4"
    )
    assert Task.from_upstream({**base, "output": None}).video_url is None


def test_task_reading_is_tolerant_of_unknown_statuses_and_missing_parts() -> None:
    task = Task.from_upstream({"task_id": "t1", "status": "Weird", "meta": None, "error": "x"})
    assert task.status is TaskStatus.UNKNOWN
    assert task.error_message is None


def test_timestamps_keep_their_time_and_zero_time_means_not_reached() -> None:
    parsed = parse_time("2026-01-25T13:52:23.125177638Z")
    assert parsed is not None and parsed.microsecond == 125177
    assert parse_time("0001-01-01T00:00:00Z") is None
