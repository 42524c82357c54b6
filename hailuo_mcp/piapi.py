"""PiAPIClient: one httpx.AsyncClient, one request per call, failures turned into typed errors.

Nothing here retries. The poll loop decides when a GET is retried; a create is never retried.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import httpx

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import (
    AmbiguousCreateError,
    AuthenticationError,
    ConfigurationError,
    DownloadError,
    HailuoError,
    InputError,
    InsufficientCreditsError,
    MalformedResponseError,
    RateLimitedError,
    StorageError,
    TaskNotFoundError,
    UpstreamUnavailableError,
)
from hailuo_mcp.models import Task, VideoRequest, is_valid_task_id

_CHUNK = 64 * 1024
# Requests in flight at once. More wait at our own gate, in order: httpcore's pool rescans every
# queued request against every connection on each change, which stalled the event loop for
# seconds with 1000 tasks polling (docs/PERFORMANCE.md, many tasks). 64 connections carry
# ~200 GETs/s at a 300 ms round trip; 1000 tasks need ~150.
_MAX_CONNECTIONS = 64
_MAX_MESSAGE = 300
# Sent by httpx before any byte of the request left: the create certainly did not happen.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def missing_key_error() -> ConfigurationError:
    """The error every tool that needs the key answers when PIAPI_API_KEY is unset."""
    return ConfigurationError(
        "PIAPI_API_KEY is not set. Get a key at https://piapi.ai/workspace/key and add "
        '"PIAPI_API_KEY": "<your key>" to the "env" block of this server in your MCP client '
        "configuration, then restart the server. (HAILUO_DEMO=1 runs on a built-in emulator "
        "without a key.)"
    )


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class PiAPIClient:
    """Async client for PiAPI's task API, used as `async with PiAPIClient(settings) as c`."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        self._slots = anyio.Semaphore(_MAX_CONNECTIONS)

    async def __aenter__(self) -> PiAPIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared httpx client (image probing reuses its pool), built on first use.

        Built lazily because its TLS context costs ~50 ms and ~3 MB: an idle server never pays.
        """
        if self._client is None:
            if self._closed:
                raise RuntimeError("the PiAPI client is closed")
            settings = self._settings
            timeout = httpx.Timeout(
                settings.request_timeout,
                connect=settings.connect_timeout,
                pool=settings.request_timeout * 2,
            )
            # No default headers: the key is added per request, only on PiAPI's own hosts.
            self._client = httpx.AsyncClient(
                timeout=timeout,
                transport=self._transport,
                limits=httpx.Limits(
                    max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_CONNECTIONS
                ),
                follow_redirects=False,
                headers={"user-agent": "hailuo-mcp"},
            )
        return self._client

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the connections, waited for as long as httpx's own pool would wait."""
        try:
            with anyio.fail_after(self._settings.request_timeout * 2):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection to PiAPI") from None
        try:
            yield
        finally:
            self._slots.release()

    def _auth_headers(self) -> dict[str, str]:
        key = self._settings.api_key
        if key is None:
            raise missing_key_error()
        return {"x-api-key": key.get_secret_value()}

    def _redact(self, text: str) -> str:
        """Remove any echo of our secrets from an upstream message, then cut it to size."""
        # Redact before cutting: a cut through an echoed secret would leave a piece of it.
        text = " ".join(text.split())
        for secret in (self._settings.api_key, self._settings.webhook_secret):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "[redacted]")
        return text[:_MAX_MESSAGE]

    def _read_task(self, data: dict[str, Any]) -> Task:
        """A task object; its upstream error message is redacted like any other message."""
        task = Task.from_upstream(data)
        if task.error_message:
            task = task.model_copy(update={"error_message": self._redact(task.error_message)})
        return task

    def _upstream_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._redact(response.text) if response.text.strip() else ""
        if isinstance(body, dict):
            for key in ("message", "error", "description", "detail", "msg"):
                value = body.get(key)
                if isinstance(value, str) and value.strip():
                    return self._redact(value)
                if isinstance(value, dict):
                    inner = value.get("message")
                    if isinstance(inner, str) and inner.strip():
                        return self._redact(inner)
        return ""

    def _error_for(self, status: int, message: str, retry_after: float | None) -> HailuoError:
        detail = f": {message}" if message else ""
        lowered = message.lower()
        if status == 402 or "credit" in lowered or "balance" in lowered:
            return InsufficientCreditsError(
                f"PiAPI says the account has too few credits{detail}. Top up at "
                "https://piapi.ai/workspace and try again."
            )
        if status in (401, 403):
            return AuthenticationError(
                f"PiAPI refused the API key or plan (HTTP {status}){detail}. Check PIAPI_API_KEY "
                "in the server's configuration."
            )
        if status == 404:
            return TaskNotFoundError(f"PiAPI knows no such task (HTTP 404){detail}.")
        if status == 429:
            wait = f" Retry after {retry_after:g} s." if retry_after is not None else ""
            return RateLimitedError(
                f"PiAPI is rate limiting requests (HTTP 429){detail}.{wait}",
                retry_after=retry_after,
            )
        if status >= 500:
            return UpstreamUnavailableError(
                f"PiAPI had a server error (HTTP {status}){detail}. Try again shortly.",
                retry_after=retry_after,
            )
        return InputError(f"PiAPI rejected the request (HTTP {status}){detail}.")

    def _envelope(self, response: httpx.Response) -> dict[str, Any]:
        """Return `data` of a `{code, data, message}` answer, or raise the matching error."""
        if response.status_code >= 400:
            raise self._error_for(
                response.status_code, self._upstream_message(response), _retry_after(response)
            )
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MalformedResponseError(
                f"PiAPI sent an unreadable answer (HTTP {response.status_code}, not JSON)."
            ) from None
        if not isinstance(body, dict):
            raise MalformedResponseError("PiAPI sent an unreadable answer (not a JSON object).")
        code = body.get("code", 200)
        if code not in (0, 200, "0", "200"):
            status = code if isinstance(code, int) else 500
            message = self._redact(str(body.get("message") or body.get("error") or ""))
            raise self._error_for(status, message, None)
        data = body.get("data")
        if not isinstance(data, dict):
            raise MalformedResponseError("PiAPI sent an answer without a task object (`data`).")
        return data

    async def create(self, request: VideoRequest) -> Task:
        """Send one create; never retried. A lost answer raises AmbiguousCreateError."""
        config: dict[str, Any] = {"service_mode": "public"}
        if self._settings.webhook_url:
            secret = self._settings.webhook_secret
            config["webhook_config"] = {
                "endpoint": self._settings.webhook_url,
                "secret": secret.get_secret_value() if secret else "",
            }
        body = {
            "model": "hailuo",
            "task_type": "video_generation",
            "input": request.upstream_input(),
            "config": config,
        }
        url = self._settings.base_url.rstrip("/") + "/api/v1/task"
        headers = self._auth_headers()
        try:
            async with self._slot():
                response = await self.http.post(url, json=body, headers=headers)
        except _NOT_SENT as exc:
            raise UpstreamUnavailableError(
                f"Could not reach PiAPI ({type(exc).__name__}); no task was created."
            ) from None
        except httpx.HTTPError as exc:
            raise AmbiguousCreateError(
                f"The create request was sent but PiAPI's answer was lost ({type(exc).__name__}). "
                "A task may have been created and may be charged. It was NOT retried to avoid "
                "paying twice: check your PiAPI task history (https://piapi.ai/workspace) "
                "before generating again."
            ) from None
        try:
            data = self._envelope(response)
        except TaskNotFoundError:
            # A 404 to the create is not an unknown task: the URL is wrong.
            raise ConfigurationError(
                f"PiAPI answered HTTP 404 to the create at {url}: PIAPI_BASE_URL "
                f"({self._settings.base_url}) is probably wrong; it must be the API's base URL, "
                "e.g. https://api.piapi.ai. No task was created."
            ) from None
        except UpstreamUnavailableError as exc:
            if response.status_code >= 300:
                raise
            # A 2xx without a readable task (garbled, or a server-error code in the envelope):
            # the task may exist with an id we never learnt, so a retry could pay twice.
            what = (
                exc.message
                if isinstance(exc, MalformedResponseError)
                else "PiAPI's success answer to the create carried a server-error code instead "
                "of a task."
            )
            raise AmbiguousCreateError(
                f"{what} A task may have been created and may be charged; it was NOT "
                "retried. Check your PiAPI task history before generating again."
            ) from None
        task = self._read_task(data)
        if not is_valid_task_id(task.task_id):
            raise AmbiguousCreateError(
                "PiAPI accepted the create but returned no usable task id; it was NOT retried. "
                "Check your PiAPI task history before generating again."
            )
        return task

    async def get(self, task_id: str) -> Task:
        """Fetch a task's current state once."""
        if not is_valid_task_id(task_id):
            raise InputError(f"task_id {task_id[:80]!r} is not a valid PiAPI task id")
        url = self._settings.base_url.rstrip("/") + f"/api/v1/task/{task_id}"
        try:
            async with self._slot():
                response = await self.http.get(url, headers=self._auth_headers())
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailableError(
                f"PiAPI did not answer in time ({type(exc).__name__}).", task_id=task_id
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(
                f"The connection to PiAPI failed ({type(exc).__name__}).", task_id=task_id
            ) from None
        try:
            task = self._read_task(self._envelope(response))
        except HailuoError as exc:
            raise exc.with_task(task_id) from None
        if task.task_id != task_id:
            task = task.model_copy(update={"task_id": task_id})
        return task

    async def account(self) -> dict[str, Any]:
        """`data` of GET /account/info: the balance in USD and the credit figures."""
        url = self._settings.base_url.rstrip("/") + "/account/info"
        try:
            async with self._slot():
                response = await self.http.get(url, headers=self._auth_headers())
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(
                f"PiAPI's account endpoint did not answer ({type(exc).__name__})."
            ) from exc
        return self._envelope(response)

    async def upload(self, file_name: str, data: bytes) -> str:
        """Upload a file through the contract's upload endpoint; return its (ephemeral) URL."""
        body = {"file_name": file_name, "file_data": base64.b64encode(data).decode("ascii")}
        try:
            async with self._slot():
                response = await self.http.post(
                    self._settings.upload_url, json=body, headers=self._auth_headers()
                )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(
                f"The image upload to PiAPI failed ({type(exc).__name__})."
            ) from None
        answer = self._envelope(response)
        url = answer.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise UpstreamUnavailableError("PiAPI's upload answer carried no URL.")
        return url

    async def download(self, url: str, destination: Path, *, task_id: str) -> int:
        """Stream `url` into `destination` via a temporary file and an atomic rename."""
        folder = destination.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temp_name = _open_temp(folder, destination.name)
        except OSError as exc:
            raise StorageError(
                f"Cannot write to the output folder {folder} ({exc.strerror or exc}). Set "
                "HAILUO_OUTPUT_DIR to a writable folder; the video is still at video_url.",
                task_id=task_id,
            ) from None
        temp = Path(temp_name)
        written = 0
        try:
            with anyio.fail_after(self._settings.download_timeout):
                async with self._slot(), self.http.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise DownloadError(
                            f"The video URL answered HTTP {response.status_code}"
                            + (" (expired?)" if response.status_code in (403, 404, 410) else "")
                            + ".",
                            task_id=task_id,
                        )
                    async for chunk in response.aiter_bytes(_CHUNK):
                        _write_all(fd, chunk)
                        written += len(chunk)
            await anyio.to_thread.run_sync(os.fsync, fd)
            os.close(fd)
            fd = -1
            os.replace(temp, destination)
            return written
        except TimeoutError:
            raise DownloadError(
                f"The video download took longer than {self._settings.download_timeout:g} s.",
                task_id=task_id,
            ) from None
        except httpx.HTTPError as exc:
            raise DownloadError(
                f"The video download was interrupted after {written} bytes ({type(exc).__name__}).",
                task_id=task_id,
            ) from None
        except OSError as exc:
            raise StorageError(
                f"Cannot save the video in {folder} ({exc.strerror or exc}); the video is still "
                "at video_url for a while.",
                task_id=task_id,
            ) from None
        finally:
            if fd >= 0:
                os.close(fd)
            if temp.exists():
                temp.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte: os.write may store fewer than asked (a nearly full disk, a signal)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _open_temp(folder: Path, final_name: str) -> tuple[int, str]:
    """Create a hidden temporary file beside the final one (same file system: atomic rename)."""
    name = folder / f".{final_name}.{secrets.token_hex(6)}.part"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    return fd, str(name)
