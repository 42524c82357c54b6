"""PiAPIClient against the emulator: envelope variants, typed errors, atomic downloads."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from hailuo_mcp.emulator import EmulatorConfig, Fault, running_emulator
from hailuo_mcp.errors import (
    AuthenticationError,
    DownloadError,
    TaskNotFoundError,
    UpstreamUnavailableError,
)
from hailuo_mcp.models import TaskStatus, VideoRequest
from hailuo_mcp.piapi import PiAPIClient
from tests.support import KEY, make_settings

pytestmark = pytest.mark.anyio


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
    tmp_path: Path, output_key: str, envelope_code: int
) -> None:
    config = EmulatorConfig(
        api_key=KEY,
        speed=200,
        envelope_code=envelope_code,
        output_key=output_key,  # type: ignore[arg-type]
    )
    with running_emulator(config) as emulator:
        async with PiAPIClient(make_settings(emulator, tmp_path)) as client:
            task = await client.create(VideoRequest(prompt="x"))
            assert task.status in (TaskStatus.PENDING, TaskStatus.STAGED)
            url = await finish(client, task.task_id)
    assert url.startswith(emulator.url)


async def test_unknown_task_and_wrong_key_are_typed_errors(tmp_path: Path) -> None:
    with running_emulator(EmulatorConfig(api_key=KEY, speed=200)) as emulator:
        settings = make_settings(emulator, tmp_path)
        async with PiAPIClient(settings) as client:
            with pytest.raises(TaskNotFoundError) as missing:
                await client.get("00000000-0000-4000-8000-000000000000")
        wrong = make_settings(emulator, tmp_path, PIAPI_API_KEY="sk-wrong")
        async with PiAPIClient(wrong) as client:
            with pytest.raises(AuthenticationError):
                await client.create(VideoRequest(prompt="x"))
    assert missing.value.task_id == "00000000-0000-4000-8000-000000000000"


async def test_a_malformed_answer_while_polling_is_retryable_and_names_the_task(
    tmp_path: Path,
) -> None:
    with running_emulator(EmulatorConfig(api_key=KEY, speed=200)) as emulator:
        async with PiAPIClient(make_settings(emulator, tmp_path)) as client:
            task = await client.create(VideoRequest(prompt="x"))
            emulator.add_fault(Fault("get", "malformed"))
            with pytest.raises(UpstreamUnavailableError) as caught:
                await client.get(task.task_id)
    assert caught.value.task_id == task.task_id


@pytest.mark.parametrize(("kind", "words"), [("truncate", "interrupted"), ("not_found", "404")])
async def test_a_broken_download_leaves_no_file_behind(
    tmp_path: Path, kind: str, words: str
) -> None:
    with running_emulator(EmulatorConfig(api_key=KEY, speed=200)) as emulator:
        settings = make_settings(emulator, tmp_path)
        async with PiAPIClient(settings) as client:
            task = await client.create(VideoRequest(prompt="x"))
            url = await finish(client, task.task_id)
            emulator.add_fault(Fault("download", kind))  # type: ignore[arg-type]
            target = settings.output_dir / "video.mp4"
            with pytest.raises(DownloadError, match=words) as caught:
                await client.download(url, target, task_id=task.task_id)
            assert caught.value.task_id == task.task_id
            assert list(settings.output_dir.iterdir()) == []
            size = await client.download(url, target, task_id=task.task_id)
    assert target.stat().st_size == size > 0
    assert list(settings.output_dir.iterdir()) == [target]


async def test_the_key_is_sent_to_piapi_but_not_to_the_video_host(tmp_path: Path) -> None:
    with running_emulator(EmulatorConfig(api_key=KEY, speed=200)) as emulator:
        settings = make_settings(emulator, tmp_path)
        async with PiAPIClient(settings) as client:
            assert "x-api-key" not in client.http.headers
            task = await client.create(VideoRequest(prompt="x"))
            url = await finish(client, task.task_id)
            captured: list[str | None] = []

            async def record(request: object) -> None:
                captured.append(getattr(request, "headers", {}).get("x-api-key"))

            client.http.event_hooks["request"].append(record)
            await client.download(url, settings.output_dir / "v.mp4", task_id=task.task_id)
    assert captured == [None]
