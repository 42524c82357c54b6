"""The four tools through a real in-process MCP client, against the emulator on loopback."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import BlobResourceContents, CallToolResult, ResourceLink, TextContent

from hailuo_mcp.config import Settings
from hailuo_mcp.emulator import Emulator, Fault
from hailuo_mcp.ledger import open_ledger_sync
from hailuo_mcp.runtime import WORKER_THREADS
from hailuo_mcp.server import build_server
from tests.support import KEY, MakeEmulator, error_of, make_settings, sample_png

pytestmark = [pytest.mark.anyio, pytest.mark.emulator(clock=100, seed=7, fixed_durations=None)]


@pytest.fixture
def settings(emulator: Emulator, tmp_path: Path) -> Settings:
    return make_settings(emulator, tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as c:
        yield c


def text_of(result: CallToolResult) -> str:
    return " ".join(b.text for b in result.content if isinstance(b, TextContent))


def ledger_rows(settings: Settings) -> list[dict[str, Any]]:
    with open_ledger_sync(settings.ledger_path) as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM tasks ORDER BY created_at")]


async def test_text_to_video_saves_a_playable_mp4_and_reports_progress(
    client: Client, emulator: Emulator, settings: Settings
) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    with anyio.fail_after(30):
        result = await client.call_tool(
            "generate_video", {"prompt": "autumn wind"}, progress_callback=on_progress
        )
    assert not result.is_error, text_of(result)
    data = result.structured_content or {}
    assert data["status"] == "completed" and data["done"] is True
    video = Path(data["video_path"])
    assert video.parent == settings.output_dir and video.is_file()
    assert video.read_bytes()[4:8] == b"ftyp"  # an MP4 container
    assert data["cost_usd"] == 0.23 and data["charged"] is True
    assert data["video_url"].startswith(emulator.url)
    links = [b for b in result.content if isinstance(b, ResourceLink)]
    assert links and links[0].mime_type == "video/mp4"
    assert links[0].size == video.stat().st_size
    # The link is readable as a resource: the saved bytes, as a video/mp4 blob.
    (content,) = (await client.read_resource(links[0].uri)).contents
    assert isinstance(content, BlobResourceContents) and content.mime_type == "video/mp4"
    assert base64.b64decode(content.blob) == video.read_bytes()
    listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    assert listed[str(links[0].uri)].size == video.stat().st_size
    # The text alone says it all: file, model, duration, resolution, cost, time and task id.
    text = text_of(result)
    for fragment in (str(video), "v2.3 · 6 s · 768p", "$0.23 charged", "generated in"):
        assert fragment in text
    assert data["task_id"] in text
    assert emulator.creates() == 1
    progress = [p for p, _, _ in seen]
    assert progress == sorted(progress) and len(set(progress)) == len(progress)
    assert any("processing" in (m or "") for _, _, m in seen)
    assert progress[-1] == 100.0
    (row,) = ledger_rows(settings)
    assert (row["task_id"], row["status"], row["video_path"]) == (
        data["task_id"],
        "completed",
        str(video),
    )


async def test_the_upstream_request_follows_the_contract(
    client: Client, emulator: Emulator
) -> None:
    result = await client.call_tool(
        "generate_video",
        {"prompt": "neon city", "duration": 10, "expand_prompt": False, "wait_seconds": 0},
    )
    task = emulator.task((result.structured_content or {})["task_id"])
    assert task["model"] == "hailuo" and task["task_type"] == "video_generation"
    assert task["input"]["model"] == "v2.3"
    assert (task["input"]["duration"], task["input"]["resolution"]) == (10, 768)
    assert task["input"]["expand_prompt"] is False
    assert task["config"]["service_mode"] == "public"


async def test_image_to_video_passes_the_image_url_upstream(
    client: Client, emulator: Emulator
) -> None:
    png = sample_png(640, 480)
    upload = httpx.post(
        emulator.upload_url,
        json={"file_name": "first.png", "file_data": base64.b64encode(png).decode()},
        headers={"x-api-key": KEY},
    )
    image_url = upload.json()["data"]["url"]
    with anyio.fail_after(30):
        result = await client.call_tool(
            "generate_video",
            {"prompt": "the cat wakes up", "model": "v2.3-fast", "image_url": image_url},
        )
    assert not result.is_error, text_of(result)
    data = result.structured_content or {}
    assert data["status"] == "completed" and data["cost_usd"] == 0.16
    assert emulator.task(data["task_id"])["input"]["image_url"] == image_url


async def test_an_upstream_failure_is_an_error_naming_the_task_and_the_reason(
    client: Client, emulator: Emulator, settings: Settings
) -> None:
    emulator.fail_next_tasks(1, code=2013, message="content policy violation")
    with anyio.fail_after(30):
        result = await client.call_tool("generate_video", {"prompt": "something"})
    assert result.is_error
    data = result.structured_content or {}
    task_id = data["task_id"]
    assert task_id in text_of(result) and "content policy violation" in text_of(result)
    assert data["error_kind"] == "task_failed" and data["status"] == "failed"
    assert "Nothing was charged" in text_of(result)
    (row,) = ledger_rows(settings)
    assert (row["task_id"], row["status"]) == (task_id, "failed")


@pytest.mark.parametrize(
    "faults",
    [
        [Fault("get", "status", times=2, status=429, retry_after=0.05)],
        [Fault("get", "status", times=2, status=429)],
        [Fault("get", "status", status=500), Fault("get", "status", status=502)],
        [Fault("get", "malformed", times=2)],
        [Fault("get", "status", status=503)],
    ],
    ids=["429-retry-after", "429-bare", "500-502", "malformed", "503"],
)
async def test_passing_faults_while_polling_are_retried_and_the_video_still_arrives(
    client: Client, emulator: Emulator, faults: list[Fault]
) -> None:
    for fault in faults:
        emulator.add_fault(fault)
    with anyio.fail_after(30):
        result = await client.call_tool("generate_video", {"prompt": "storm at sea"})
    assert not result.is_error, text_of(result)
    assert (result.structured_content or {})["status"] == "completed"
    assert emulator.creates() == 1


async def test_a_spent_wait_budget_hands_back_the_task_id_and_get_task_finishes_it(
    client: Client, emulator: Emulator, settings: Settings
) -> None:
    first = await client.call_tool("generate_video", {"prompt": "slow sunrise", "wait_seconds": 0})
    assert not first.is_error, text_of(first)
    data = first.structured_content or {}
    assert data["done"] is False and data["status"] in {"pending", "processing"}
    assert "get_task" in data["next_step"] and data["task_id"] in data["next_step"]
    with anyio.fail_after(30):
        second = await client.call_tool(
            "get_task", {"task_id": data["task_id"], "wait_seconds": 20}
        )
    assert not second.is_error, text_of(second)
    done = second.structured_content or {}
    assert done["status"] == "completed" and Path(done["video_path"]).is_file()
    assert emulator.creates() == 1


async def test_a_task_left_unwatched_is_still_saved_in_the_background(
    client: Client, emulator: Emulator, settings: Settings
) -> None:
    first = await client.call_tool("generate_video", {"prompt": "tide", "wait_seconds": 0})
    task_id = (first.structured_content or {})["task_id"]
    with anyio.fail_after(30):
        while not any(r["video_path"] for r in ledger_rows(settings)):
            await anyio.sleep(0.05)
    (row,) = ledger_rows(settings)
    assert row["task_id"] == task_id and Path(row["video_path"]).is_file()


async def test_a_cancelled_call_stops_its_progress_but_the_paid_video_is_still_saved(
    client: Client, emulator: Emulator, settings: Settings
) -> None:
    # Clients cancel when their own timeout fires: the task cannot be stopped upstream and is
    # charged, so it is followed in the background like a task whose wait budget ran out.
    started = anyio.Event()
    after_cancel: list[str] = []
    cancelled = False

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if cancelled:
            after_cancel.append(message or "")
        if "processing" in (message or ""):
            started.set()

    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: client.call_tool(
                "generate_video", {"prompt": "x"}, progress_callback=on_progress
            )
        )
        with anyio.fail_after(10):
            await started.wait()
        group.cancel_scope.cancel()
    cancelled = True
    (task_id,) = emulator.task_ids()
    with anyio.fail_after(20):
        while not (row := ledger_rows(settings)[0])["video_path"]:
            await anyio.sleep(0.05)
    assert row["task_id"] == task_id and row["status"] == "completed"
    assert Path(row["video_path"]).read_bytes()[4:8] == b"ftyp"
    assert after_cancel == []
    assert emulator.creates() == 1
    again = await client.call_tool("get_task", {"task_id": task_id})
    assert (again.structured_content or {})["video_path"] == row["video_path"]


async def test_a_relative_output_folder_still_answers_with_the_task_id(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = make_settings(emulator, tmp_path, HAILUO_OUTPUT_DIR="myvideos")
    async with Client(build_server(settings)) as c:
        with anyio.fail_after(30):
            result = await c.call_tool("generate_video", {"prompt": "x"})
            data = result.structured_content or {}
            again = await c.call_tool("get_task", {"task_id": data.get("task_id", "none")})
    assert not result.is_error, text_of(result)
    assert Path(data["video_path"]) == tmp_path / "myvideos" / Path(data["video_path"]).name
    assert not again.is_error and data["task_id"] in text_of(again)


async def test_the_ledger_is_private_and_records_expand_prompt(
    client: Client, settings: Settings
) -> None:
    result = await client.call_tool(
        "generate_video", {"prompt": "x", "expand_prompt": False, "wait_seconds": 0}
    )
    assert not result.is_error, text_of(result)
    for path in settings.state_dir.iterdir():
        if path.name.startswith("tasks.sqlite3"):
            assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"
    (row,) = ledger_rows(settings)
    assert row["expand_prompt"] == 0


async def test_list_tasks_text_shows_cost_and_file(client: Client) -> None:
    with anyio.fail_after(30):
        made = await client.call_tool("generate_video", {"prompt": "x"})
    data = made.structured_content or {}
    listed = await client.call_tool("list_tasks", {})
    text = text_of(listed)
    assert data["task_id"] in text and data["video_path"] in text and "$0.23 charged" in text
    (task,) = (listed.structured_content or {})["tasks"]
    assert task["cost_usd"] == 0.23 and task["charged"] is True


async def test_an_unknown_task_id_is_a_clear_error(client: Client) -> None:
    result = await client.call_tool("get_task", {"task_id": "00000000-0000-4000-8000-000000000000"})
    assert result.is_error
    assert "no such task" in text_of(result)
    assert (result.structured_content or {})["task_id"] == "00000000-0000-4000-8000-000000000000"


async def test_a_path_like_task_id_is_refused_before_any_upstream_call(
    client: Client, emulator: Emulator
) -> None:
    result = await client.call_tool("get_task", {"task_id": "../../etc/passwd"})
    assert result.is_error and "task_id" in text_of(result)
    assert "at most 128 characters" in text_of(result)  # the rule, not only the field
    assert emulator.gets() == 0


async def test_a_filename_with_nothing_usable_is_refused_before_anything_is_paid(
    client: Client, emulator: Emulator
) -> None:
    result = await client.call_tool("generate_video", {"prompt": "x", "filename": "../../"})
    assert result.is_error and "filename" in text_of(result)
    assert "plain name" in text_of(result)
    assert emulator.creates() == 0


async def test_get_task_adopts_a_task_created_elsewhere(
    client: Client, emulator: Emulator, settings: Settings
) -> None:
    created = httpx.post(
        f"{emulator.url}/api/v1/task",
        json={"model": "hailuo", "task_type": "video_generation", "input": {"prompt": "x"}},
        headers={"x-api-key": KEY},
    ).json()["data"]
    with anyio.fail_after(30):
        result = await client.call_tool(
            "get_task", {"task_id": created["task_id"], "wait_seconds": 20}
        )
    assert not result.is_error, text_of(result)
    (row,) = ledger_rows(settings)
    assert (row["task_id"], row["origin"], row["prompt"]) == (created["task_id"], "imported", "x")
    assert Path(row["video_path"]).is_file()


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"prompt": "a" * 2001}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "duration": 7}, "duration"),
        ({"prompt": "x", "resolution": 720}, "resolution"),
        ({"prompt": "x", "duration": 10, "resolution": 1080}, "resolution=1080 with duration=10"),
        ({"prompt": "x", "model": "v2.3-fast"}, "image_url"),
        ({"prompt": "x", "model": "v9"}, "model"),
        ({"prompt": "nul \x00 inside"}, "prompt"),
        ({"prompt": "x", "wait_seconds": -1}, "wait_seconds"),
        ({"prompt": "x", "image_url": "ftp://example.com/a.png"}, "image_url"),
    ],
)
async def test_invalid_arguments_are_refused_naming_the_field_and_nothing_is_created(
    client: Client, emulator: Emulator, arguments: dict[str, Any], named: str
) -> None:
    result = await client.call_tool("generate_video", arguments)
    assert result.is_error
    assert named in text_of(result)
    assert emulator.creates() == 0


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (401, "authentication", "PIAPI_API_KEY"),
        (402, "insufficient_credits", "credits"),
        (429, "rate_limited", "rate limiting"),
        (500, "upstream_unavailable", "server error"),
        (502, "upstream_unavailable", "server error"),
    ],
)
async def test_a_refused_create_is_reported_and_never_retried(
    client: Client, emulator: Emulator, status: int, kind: str, words: str
) -> None:
    emulator.add_fault(Fault("create", "status", status=status, retry_after=1))
    result = await client.call_tool("generate_video", {"prompt": "x"})
    assert result.is_error
    assert error_of(result)["error_kind"] == kind
    assert words in text_of(result)
    assert emulator.creates() == 1


@pytest.mark.parametrize("kind", ["drop_after_record", "malformed"])
async def test_an_ambiguous_create_is_reported_not_retried(
    client: Client, emulator: Emulator, settings: Settings, kind: str
) -> None:
    emulator.add_fault(Fault("create", kind))  # type: ignore[arg-type]
    result = await client.call_tool("generate_video", {"prompt": "x"})
    assert result.is_error
    assert error_of(result)["error_kind"] == "ambiguous_create"
    assert "NOT" in text_of(result) and "task history" in text_of(result)
    assert emulator.creates() == 1
    with open_ledger_sync(settings.ledger_path) as conn:
        outcomes = [r[0] for r in conn.execute("SELECT outcome FROM create_attempts")]
    assert outcomes == ["ambiguous_create"]


async def test_without_a_key_tools_that_need_it_say_how_to_set_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path).model_copy(update={"api_key": None})
    async with Client(build_server(settings)) as c:
        result = await c.call_tool("generate_video", {"prompt": "x"})
        price = await c.call_tool("estimate_cost", {"model": "v2.3", "duration": 6})
    assert result.is_error and "PIAPI_API_KEY" in text_of(result)
    assert emulator.creates() == 0
    assert not price.is_error and (price.structured_content or {})["usd"] == 0.23


@pytest.mark.parametrize(
    ("model", "duration", "resolution", "usd"),
    [
        ("v2.3", 6, 768, 0.23),
        ("v2.3", 10, 768, 0.45),
        ("v2.3", 6, 1080, 0.40),
        ("v2.3-fast", 6, 768, 0.16),
        ("v2.3-fast", 10, 768, 0.26),
        ("v2.3-fast", 6, 1080, 0.26),
    ],
)
async def test_estimate_cost_gives_the_seed_prices(
    client: Client, model: str, duration: int, resolution: int, usd: float
) -> None:
    result = await client.call_tool(
        "estimate_cost", {"model": model, "duration": duration, "resolution": resolution}
    )
    data = result.structured_content or {}
    assert (data["usd"], data["points"]) == (usd, round(usd * 10_000_000))


async def test_estimate_cost_refuses_1080p_for_10_seconds_naming_the_rule(client: Client) -> None:
    result = await client.call_tool(
        "estimate_cost", {"model": "v2.3", "duration": 10, "resolution": 1080}
    )
    assert result.is_error and "1080 with duration=10 is not supported" in text_of(result)


async def test_list_tasks_shows_newest_first_and_filters_by_status(
    client: Client, emulator: Emulator
) -> None:
    ids = []
    for prompt in ("one", "two", "three"):
        result = await client.call_tool("generate_video", {"prompt": prompt, "wait_seconds": 0})
        ids.append((result.structured_content or {})["task_id"])
    listed = (await client.call_tool("list_tasks", {"limit": 2})).structured_content or {}
    assert [t["task_id"] for t in listed["tasks"]] == [ids[2], ids[1]]
    failed = await client.call_tool("list_tasks", {"status": "failed"})
    assert (failed.structured_content or {})["count"] == 0


async def test_tools_describe_themselves_for_an_assistant(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {
        "generate_video",
        "get_task",
        "estimate_cost",
        "list_tasks",
        "spending_summary",
        "check_balance",
    }
    generate = tools["generate_video"]
    assert generate.annotations and generate.annotations.open_world_hint is True
    assert generate.annotations.idempotent_hint is False
    # get_task saves the video the first time it sees it completed: it writes, so it is not
    # read-only, but asking twice does no more than asking once.
    get_task = tools["get_task"].annotations
    assert get_task and get_task.read_only_hint is False and get_task.idempotent_hint is True
    for name in ("estimate_cost", "list_tasks", "spending_summary", "check_balance"):
        annotations = tools[name].annotations
        assert annotations and annotations.read_only_hint is True
    # Descriptions read as text, without the source's docstring indentation.
    for tool in tools.values():
        assert tool.description and "\n    " not in tool.description
    assert "still saves the video" in (generate.description or "")
    props = generate.input_schema["properties"]
    assert props["prompt"]["maxLength"] == 2000
    assert props["duration"]["enum"] == [6, 10] and props["resolution"]["enum"] == [768, 1080]
    assert props["model"]["enum"] == ["v2.3", "v2.3-fast"]
    for tool in tools.values():
        assert tool.output_schema is not None and tool.description


async def test_progress_keeps_coming_between_polls(emulator: Emulator, tmp_path: Path) -> None:
    # A 77 s schedule against a fast emulator: the first poll is 2.3 s away, well past the
    # 0.6 s wait, so the notifications before the last look are heartbeats between polls.
    settings = make_settings(emulator, tmp_path, HAILUO_EXPECTED_SECONDS="77").model_copy(
        update={"progress_interval": 0.05}
    )
    seen: list[float] = []
    gets_meanwhile: list[int] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)
        gets_meanwhile.append(emulator.gets())

    async with Client(build_server(settings)) as c:
        result = await c.call_tool(
            "generate_video", {"prompt": "x", "wait_seconds": 0.6}, progress_callback=on_progress
        )
    assert not result.is_error
    assert gets_meanwhile.count(0) >= 5 and seen == sorted(seen)
    # At most the last look before the budget ended (background tracking polls on after it).
    assert max(gets_meanwhile) <= 1


async def test_a_task_that_ended_since_the_last_poll_is_seen_before_the_wait_ends(
    make_emulator: MakeEmulator,
    tmp_path: Path,
) -> None:
    # The case, time divided by 10: 77 s expected, a 60 s wait, a task done at ~39 s.
    # The schedule's look midway (~34 s) sees it running and its next (~63 s) is past the
    # budget: only a last look before the budget ends sees it completed.
    emu = make_emulator(clock=10, fixed_durations=(1.0, 38.0), seed=7)
    settings = make_settings(emu, tmp_path)
    async with Client(build_server(settings)) as c:
        with anyio.fail_after(30):
            result = await c.call_tool("generate_video", {"prompt": "x", "wait_seconds": 6})
    assert not result.is_error, text_of(result)
    data = result.structured_content or {}
    assert data["status"] == "completed" and data["done"] is True
    assert Path(data["video_path"]).is_file()
    assert data["waited_seconds"] < 6


async def test_expand_prompt_follows_the_server_default_unless_the_call_says(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings(emulator, tmp_path, HAILUO_EXPAND_PROMPT_DEFAULT="0")
    async with Client(build_server(settings)) as c:
        quiet = await c.call_tool("generate_video", {"prompt": "x", "wait_seconds": 0})
        loud = await c.call_tool(
            "generate_video", {"prompt": "x", "wait_seconds": 0, "expand_prompt": True}
        )
    quiet_task = emulator.task((quiet.structured_content or {})["task_id"])
    loud_task = emulator.task((loud.structured_content or {})["task_id"])
    assert quiet_task["input"]["expand_prompt"] is False
    assert loud_task["input"]["expand_prompt"] is True


async def test_each_create_attempt_is_closed_with_the_task_it_made(
    client: Client, emulator: Emulator, settings: Settings
) -> None:
    result = await client.call_tool("generate_video", {"prompt": "x", "wait_seconds": 0})
    task_id = (result.structured_content or {})["task_id"]
    with open_ledger_sync(settings.ledger_path) as conn:
        attempts = [tuple(r) for r in conn.execute("SELECT outcome, task_id FROM create_attempts")]
    assert attempts == [("created", task_id)]


async def test_the_server_reports_the_package_version(settings: Settings) -> None:
    from hailuo_mcp import __version__

    async with Client(build_server(settings), mode="legacy") as legacy:
        info = legacy.server_info
    assert info is not None and info.version == __version__ != "0.0.0+unknown"


async def test_blocking_file_work_runs_on_at_most_eight_threads_while_the_server_runs(
    client: Client,
) -> None:
    # anyio's default is 40 threads; each adds a stack and a malloc arena for nothing on a
    # small machine. Twenty jobs at once in the server's loop: no more than eight run together.
    running = peak = 0
    count = threading.Lock()

    def job() -> None:
        nonlocal running, peak
        with count:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with count:
            running -= 1

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(anyio.to_thread.run_sync, job)
    assert peak == WORKER_THREADS == 8
