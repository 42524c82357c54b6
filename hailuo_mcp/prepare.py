"""Every rule a request must pass before anything is paid, in one place.

The tool's signature gives the JSON schema (types, enums, lengths from models.py); here the
request is built and checked against the rest: the combination rules, the rules that depend on
configuration, the price, the output folder, and the image (its own checks in images.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from pydantic import ValidationError

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import ConfigurationError, InputError
from hailuo_mcp.filenames import safe_name
from hailuo_mcp.models import TASK_ID_RULE, VideoRequest, is_valid_task_id, validation_message
from hailuo_mcp.pricing import Estimate, estimate
from hailuo_mcp.progress import Progress

# Checks the image and returns the request with its final http(s) URL; the callback receives a
# sentence for each check that could not be made from here (see images.py).
ImageCheck = Callable[[VideoRequest, Callable[[str], None]], Awaitable[VideoRequest]]


@dataclass(frozen=True)
class Prepared:
    """A request that passed every check, its price, and what could not be checked."""

    request: VideoRequest
    price: Estimate
    warnings: tuple[str, ...] = ()


def build_request(
    *,
    prompt: str,
    model: str,
    image_url: str | None,
    duration: int,
    resolution: int,
    expand_prompt: bool | None,
    settings: Settings,
) -> VideoRequest:
    """The request from the tool's arguments; InputError names each broken rule."""
    try:
        return VideoRequest.model_validate(
            {
                "prompt": prompt,
                "model": model,
                "image_url": image_url,
                "duration": duration,
                "resolution": resolution,
                "expand_prompt": (
                    settings.expand_prompt_default if expand_prompt is None else expand_prompt
                ),
            }
        )
    except ValidationError as exc:
        raise InputError(validation_message(exc)) from exc


def checked_file_name(file_name: str | None) -> str | None:
    """The file name to save under, stripped of folders and unsafe characters; None: the default."""
    if file_name is None:
        return None
    if (safe := safe_name(file_name)) is None:
        raise InputError(
            "filename: nothing usable is left once folders and unsafe characters are "
            "removed; give a plain name such as fox-in-autumn.mp4"
        )
    return safe


def check_task_id(task_id: str) -> None:
    """Refuse an id that is not a PiAPI task id before it reaches a URL or the ledger."""
    if not is_valid_task_id(task_id):
        raise InputError(f"task_id must be a PiAPI task id ({TASK_ID_RULE})")


def price_of(request: VideoRequest, settings: Settings) -> Estimate:
    """The rules that depend on configuration, then the price (InputError names the rule)."""
    if request.model == "v2.3-fast" and settings.fast_requires_image and not request.image_url:
        raise InputError(
            "model=v2.3-fast is image-to-video only: give image_url, or use model=v2.3 for "
            "text-to-video"
        )
    return estimate(
        request.model, request.duration, request.resolution, points_per_usd=settings.points_per_usd
    )


def check_output_folder(folder: Path) -> None:
    """Create the output folder and prove it writable, before anything is paid."""
    probe = folder / f".hailuo-write-check-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"HAILUO_OUTPUT_DIR: cannot write videos to {folder} ({exc.strerror or exc}). Set "
            "HAILUO_OUTPUT_DIR to a writable folder and restart the server; nothing was "
            "created or charged."
        ) from exc


async def prepare(
    request: VideoRequest,
    settings: Settings,
    *,
    image_check: ImageCheck | None,
    progress: Progress,
    local_files: bool = True,
) -> Prepared:
    """Check everything that can be checked before the create; raise what fails.

    `local_files` is off for a caller over HTTP: the server's files are not its files.
    """
    if not local_files and request.image_url and not _is_http(request.image_url):
        # Never upload a file of the server's machine for someone else.
        raise InputError(
            "image_url: a caller over HTTP gives an http(s) URL of the image; local paths "
            "and file:// URIs name files on the server's machine and are taken only from "
            "its local user (stdio)"
        )
    price = price_of(request, settings)
    progress.say("checking the output folder")
    await anyio.to_thread.run_sync(check_output_folder, settings.output_dir)
    warnings: list[str] = []
    if request.image_url:
        if image_check is None:
            if not _is_http(request.image_url):
                raise InputError("image_url must be an http(s) URL")
        else:
            progress.say("checking the image")
            request = await image_check(request, warnings.append)
    return Prepared(request=request, price=price, warnings=tuple(warnings))


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))
