"""The inline player (MCP Apps) and the task resources, through the in-process client.

A client that advertises MCP Apps (``io.modelcontextprotocol/ui`` with the app MIME type) gets
the player's hints in generate_video's and get_task's results; one that does not gets the same
result without them. Saved videos read back whole and in parts, and only from the output folder.
The browser half is tests/server/test_player_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    BlobResourceContents,
    CallToolResult,
    TextResourceContents,
)

from hailuo_mcp.config import Settings
from hailuo_mcp.digests import PART_BYTES
from hailuo_mcp.emulator import Emulator
from hailuo_mcp.player import (
    PART_META_KEY,
    PLAYER_META_KEY,
    PLAYER_URI,
    VIDEO_PART_URI,
    page_csp,
    player_html,
    video_part_uri,
)
from hailuo_mcp.server import build_server
from hailuo_mcp.task_resource import TASK_URI, task_uri
from hailuo_mcp.tool_results import SHA256_META_KEY, video_uri
from tests.support import make_settings, text_of

pytestmark = pytest.mark.anyio

APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


@pytest.fixture
def settings(fast_emulator: Emulator, tmp_path: Path) -> Settings:
    return make_settings(fast_emulator, tmp_path)


@pytest.fixture
async def apps_client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings), extensions=[APPS]) as client:
        yield client


@pytest.fixture
async def plain_client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as client:
        yield client


async def generate(client: Client, **arguments: Any) -> CallToolResult:
    with anyio.fail_after(30):
        result = await client.call_tool("generate_video", {"prompt": "a paper boat", **arguments})
    assert not result.is_error, text_of(result)
    return result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_generate_video_and_get_task_point_at_the_player_and_nothing_else_does(
    plain_client: Client,
) -> None:
    tools = {tool.name: tool for tool in (await plain_client.list_tools()).tools}
    bound = {name for name, tool in tools.items() if (tool.meta or {}).get("ui")}
    assert bound == {"generate_video", "get_task"}
    for name in bound:
        assert (tools[name].meta or {})["ui"] == {"resourceUri": PLAYER_URI}


async def test_the_player_is_an_mcp_app_that_needs_no_domain(plain_client: Client) -> None:
    (content,) = (await plain_client.read_resource(PLAYER_URI)).contents
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == APP_MIME_TYPE
    ui = (content.meta or {})["ui"]
    assert ui["csp"] == {}  # no connect, resource, frame or base-uri domains
    assert ui["prefersBorder"] is True
    assert content.text == player_html()


def test_the_pages_own_policy_allows_only_its_script_and_style_and_data_media() -> None:
    html = player_html()
    (policy,) = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'none'"
    assert directives["media-src"] == "data:" and directives["img-src"] == "data:"
    (script,) = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert directives["script-src"] == f"'sha256-{digest}'"
    assert "unsafe" not in policy
    # Nothing outside the page: no URL a browser would fetch.
    assert not re.search(r"\b(?:src|href)=", html)
    assert "https://" not in html and "http://" not in html
    assert page_csp(html.replace(policy, "__CSP__")) == policy


async def test_a_client_with_apps_gets_the_players_hints_to_read_and_check_the_saved_file(
    apps_client: Client,
) -> None:
    result = await generate(apps_client)
    data = result.structured_content or {}
    video = Path(data["video_path"])
    hints = (result.meta or {})[PLAYER_META_KEY]
    assert hints == {
        "task_id": data["task_id"],
        "video_uri": video_uri(data["task_id"]),
        "mime_type": "video/mp4",
        "size": video.stat().st_size,
        "sha256": sha256(video),
        "parts": {
            "uri_template": f"{video_uri(data['task_id'])}/parts/{{index}}",
            "count": 1,
            "part_bytes": PART_BYTES,
        },
    }
    # get_task of the saved task: the same hints, from the ledger.
    again = await apps_client.call_tool("get_task", {"task_id": data["task_id"]})
    assert (again.meta or {})[PLAYER_META_KEY] == hints


async def test_a_client_without_apps_gets_the_result_it_always_got(
    plain_client: Client, apps_client: Client
) -> None:
    plain = await generate(plain_client)
    assert plain.meta is None or PLAYER_META_KEY not in plain.meta
    assert [block.type for block in plain.content] == ["text", "resource_link", "image"]
    # The same request from an Apps client differs only by the player's hints.
    rich = await generate(apps_client, allow_duplicate=True)
    assert [block.type for block in rich.content] == [block.type for block in plain.content]
    assert set(rich.structured_content or {}) == set(plain.structured_content or {})


async def test_a_task_is_a_resource_with_its_json_from_the_ledger(apps_client: Client) -> None:
    templates = (await apps_client.list_resource_templates()).resource_templates
    assert TASK_URI in {template.uri_template for template in templates}
    result = await generate(apps_client)
    data = result.structured_content or {}
    (content,) = (await apps_client.read_resource(task_uri(data["task_id"]))).contents
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == "application/json"
    task = json.loads(content.text)
    video = Path(data["video_path"])
    assert task["task_id"] == data["task_id"] and task["status"] == "completed"
    assert task["prompt"] == "a paper boat" and task["cost_usd"] == data["cost_usd"]
    assert task["video"] == {
        "uri": video_uri(data["task_id"]),
        "path": str(video),
        "size": video.stat().st_size,
        "sha256": sha256(video),
        "mime_type": "video/mp4",
        "parts": {
            "uri_template": f"{video_uri(data['task_id'])}/parts/{{index}}",
            "count": 1,
            "part_bytes": PART_BYTES,
        },
    }


async def test_a_running_task_reads_as_running_without_a_video(apps_client: Client) -> None:
    result = await apps_client.call_tool(
        "generate_video", {"prompt": "a slow sunrise", "wait_seconds": 0}
    )
    data = result.structured_content or {}
    assert data["done"] is False, text_of(result)
    assert "image" not in [block.type for block in result.content]
    assert PLAYER_META_KEY not in (result.meta or {})
    (content,) = (await apps_client.read_resource(task_uri(data["task_id"]))).contents
    assert isinstance(content, TextResourceContents)
    task = json.loads(content.text)
    assert task["status"] in ("pending", "processing") and task["video"] is None


@pytest.mark.parametrize("task_id", ["0123456789abcdef0123456789abcdef", "not a task id"])
async def test_reading_an_unknown_or_malformed_task_is_an_error(
    apps_client: Client, task_id: str
) -> None:
    with pytest.raises(Exception, match="ledger|not a task id"):
        await apps_client.read_resource(task_uri(task_id))


async def test_saved_videos_are_listed_with_size_and_sha256_and_read_back_byte_identical(
    plain_client: Client,
) -> None:
    first = await generate(plain_client)
    second = await generate(plain_client, prompt="a paper plane")
    listed = {str(r.uri): r for r in (await plain_client.list_resources()).resources}
    for result in (first, second):
        data = result.structured_content or {}
        video = Path(data["video_path"])
        entry = listed[video_uri(data["task_id"])]
        assert entry.mime_type == "video/mp4" and entry.size == video.stat().st_size
        assert (entry.meta or {})[SHA256_META_KEY] == sha256(video)
        (content,) = (await plain_client.read_resource(entry.uri)).contents
        assert isinstance(content, BlobResourceContents)
        read = base64.b64decode(content.blob)
        assert read == video.read_bytes()
        assert hashlib.sha256(read).hexdigest() == (entry.meta or {})[SHA256_META_KEY]


def grow(path: Path, size: int) -> None:
    """Make a saved file ``size`` bytes long with bytes that differ from part to part."""
    missing = size - path.stat().st_size
    with path.open("ab") as file:
        file.write(bytes(range(256)) * (missing // 256) + bytes(missing % 256))


async def read_blob(client: Client, uri: str) -> BlobResourceContents:
    (content,) = (await client.read_resource(uri)).contents
    assert isinstance(content, BlobResourceContents) and str(content.uri) == uri
    assert content.mime_type == "video/mp4"
    return content


async def read_error(client: Client, uri: str) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    return caught.value


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_a_video_reads_back_byte_identical_whole_and_reassembled_from_its_parts(
    settings: Settings, mode: str
) -> None:
    async with Client(build_server(settings), mode=mode) as client:
        data = (await generate(client)).structured_content or {}
        task_id, video = data["task_id"], Path(data["video_path"])
        grow(video, 2 * PART_BYTES + 1000)  # three parts, the last one short
        templates = (await client.list_resource_templates()).resource_templates
        assert VIDEO_PART_URI in {template.uri_template for template in templates}

        whole = await read_blob(client, video_uri(task_id))
        assert base64.b64decode(whole.blob) == video.read_bytes()
        assert (whole.meta or {})[PART_META_KEY]["count"] == 3

        parts = []
        for index in range(3):
            part = await read_blob(client, video_part_uri(task_id, index))
            facts = (part.meta or {})[PART_META_KEY]
            raw = base64.b64decode(part.blob)
            assert facts == {
                "index": index,
                "count": 3,
                "offset": index * PART_BYTES,
                "size": len(raw),
                "file_size": video.stat().st_size,
                "part_bytes": PART_BYTES,
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
            parts.append(raw)
        assert [len(raw) for raw in parts] == [PART_BYTES, PART_BYTES, 1000]
        assert b"".join(parts) == video.read_bytes()

        (content,) = (await client.read_resource(task_uri(task_id))).contents
        assert isinstance(content, TextResourceContents)
        assert json.loads(content.text)["video"]["parts"]["count"] == 3


@pytest.mark.parametrize(
    ("index", "rule"),
    [
        ("3", "index: must be from 0 to 2: the video of task {task_id} has 3 parts"),
        ("1000000000", "index: must be a part number"),
        ("-1", "index: must be a part number"),
        ("01", "without sign or leading zeros, not '01'"),
        ("x", "index: must be a part number"),
        ("", "index: must be a part number"),
    ],
)
async def test_a_bad_part_index_is_an_invalid_params_error_naming_the_index_and_its_rule(
    plain_client: Client, index: str, rule: str
) -> None:
    data = (await generate(plain_client)).structured_content or {}
    grow(Path(data["video_path"]), 2 * PART_BYTES + 1)
    uri = f"{video_uri(data['task_id'])}/parts/{index}"
    error = await read_error(plain_client, uri)
    assert error.code == INVALID_PARAMS and error.data == {"uri": uri}
    assert rule.format(task_id=data["task_id"]) in error.message


@pytest.mark.parametrize(
    ("task_id", "rule"),
    [
        (
            "0123456789abcdef0123456789abcdef",
            "task_id: task 0123456789abcdef0123456789abcdef is not in this server's ledger",
        ),
        ("not a task id", "task_id: not a task id"),
    ],
)
async def test_an_unknown_task_has_no_video_and_no_parts(
    plain_client: Client, task_id: str, rule: str
) -> None:
    for uri in (video_uri(task_id), video_part_uri(task_id, 0)):
        error = await read_error(plain_client, uri)
        assert error.code == INVALID_PARAMS and rule in error.message, error.message


async def test_a_running_task_has_no_video_to_read_yet(plain_client: Client) -> None:
    result = await plain_client.call_tool(
        "generate_video", {"prompt": "a slow sunrise", "wait_seconds": 0}
    )
    task_id = (result.structured_content or {})["task_id"]
    error = await read_error(plain_client, video_part_uri(task_id, 0))
    assert f"task_id: task {task_id} has no saved video (yet)" in error.message


async def test_a_saved_file_linked_out_of_the_output_folder_is_never_served(
    plain_client: Client, tmp_path: Path
) -> None:
    data = (await generate(plain_client)).structured_content or {}
    task_id, video = data["task_id"], Path(data["video_path"])
    secret = tmp_path / "elsewhere" / "secret.mp4"
    secret.parent.mkdir()
    secret.write_bytes(b"not for the client")
    video.unlink()
    video.symlink_to(secret)
    for uri in (video_uri(task_id), video_part_uri(task_id, 0)):
        error = await read_error(plain_client, uri)
        assert error.code == INTERNAL_ERROR
        assert "not a file inside this server's output folder (HAILUO_OUTPUT_DIR)" in error.message
        assert str(secret) not in error.message
    (content,) = (await plain_client.read_resource(task_uri(task_id))).contents
    assert isinstance(content, TextResourceContents)
    assert json.loads(content.text)["video"] is None


async def test_a_video_the_ledger_places_outside_the_output_folder_is_never_served(
    settings: Settings, tmp_path: Path
) -> None:
    async with Client(build_server(settings)) as client:
        data = (await generate(client)).structured_content or {}
    # The same ledger, another output folder: the saved file is outside it now.
    moved = settings.model_copy(update={"output_dir": tmp_path / "other videos"})
    async with Client(build_server(moved)) as client:
        for uri in (video_uri(data["task_id"]), video_part_uri(data["task_id"], 0)):
            error = await read_error(client, uri)
            assert "not a file inside this server's output folder" in error.message
        # Nor listed: resources/list shows only what a read would serve.
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        assert video_uri(data["task_id"]) not in listed
