"""What PiAPI's side sends back, read before anyone judges it, and the gate requests queue at.

`read_data` turns an answer into its `data` object or a `BadAnswer` saying why there is none;
`refusal_error` names the error kind a refusal's status stands for. Neither raises: whether a
failure is retryable depends on the operation, so piapi.py decides it, once per operation.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import anyio
from pydantic import SecretStr

from hailuo_mcp.errors import (
    AuthenticationError,
    HailuoError,
    InputError,
    InsufficientCreditsError,
    RateLimitedError,
    TaskNotFoundError,
    UpstreamUnavailableError,
)
from hailuo_mcp.http_clients import httpx

_MAX_MESSAGE = 300
_OK_CODES = (0, 200, "0", "200")


class RequestGate:
    """At most `limit` requests in flight; the rest wait in order, for at most `wait_s`.

    httpcore's pool rescans every queued request against every connection on each change,
    which stalled the event loop for seconds with 1000 tasks polling (docs/PERFORMANCE.md,
    many tasks); waiting here instead costs nothing per queued request.
    """

    def __init__(self, limit: int, wait_s: float) -> None:
        self._slots = anyio.Semaphore(limit)
        self._wait_s = wait_s

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the block; raises httpx.PoolTimeout as httpx's own pool would."""
        try:
            with anyio.fail_after(self._wait_s):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free connection") from exc
        try:
            yield
        finally:
            self._slots.release()


def redact(text: str, secrets: Iterable[SecretStr | None]) -> str:
    """Remove any echo of our secrets from an upstream message, then cut it to size."""
    # Redact before cutting: a cut through an echoed secret would leave a piece of it.
    text = " ".join(text.split())
    for secret in secrets:
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "[redacted]")
    return text[:_MAX_MESSAGE]


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), or None."""
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


@dataclass(frozen=True)
class BadAnswer:
    """An answer without the `data` an operation needs: what PiAPI said, not yet judged.

    `refused`: an HTTP status of 400 or more, or an envelope `code` that is not a success
    (`status` is then that code). `unreadable`: not JSON, not an object, or no `data` object.
    `incomplete`: `data` lacks what the operation needs (a task id, an upload URL).
    """

    http_status: int
    kind: Literal["refused", "unreadable", "incomplete"]
    message: str
    status: int = 0
    retry_after: float | None = None
    cause: Exception | None = None

    @property
    def success(self) -> bool:
        """Whether the HTTP status said success (the envelope may still say otherwise)."""
        return 200 <= self.http_status < 300


# What one request came to when it brought no `data`: a transport failure or a bad answer.
# A string: httpx is not loaded before the first request (http_clients.py).
Failure: TypeAlias = "httpx.HTTPError | BadAnswer"


def cause_of(failure: Failure) -> BaseException | None:
    """The exception to chain the operation's error to (None: nothing raised below us)."""
    return failure if isinstance(failure, httpx.HTTPError) else failure.cause


def _message(response: httpx.Response, secrets: Iterable[SecretStr | None]) -> str:
    """The reason an error answer gives, in whichever shape the upstream (or a proxy) sent."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return redact(response.text, secrets) if response.text.strip() else ""
    if isinstance(body, dict):
        for key in ("message", "error", "description", "detail", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return redact(value, secrets)
            if isinstance(value, dict):
                inner = value.get("message")
                if isinstance(inner, str) and inner.strip():
                    return redact(inner, secrets)
    return ""


def read_data(
    response: httpx.Response, *, data_is: str, secrets: Iterable[SecretStr | None]
) -> dict[str, Any] | BadAnswer:
    """`data` of a `{code, data, message}` answer, or why there is none.

    `data_is` names the `data` object in the sentence of an answer without one; every message
    taken from the answer is redacted of `secrets`.
    """
    secrets = tuple(secrets)
    status = response.status_code
    if status >= 400:
        return BadAnswer(
            status, "refused", _message(response, secrets), status, retry_after(response)
        )
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        sentence = f"PiAPI sent an unreadable answer (HTTP {status}, not JSON)."
        return BadAnswer(status, "unreadable", sentence, cause=exc)
    if not isinstance(body, dict):
        return BadAnswer(
            status, "unreadable", "PiAPI sent an unreadable answer (not a JSON object)."
        )
    code = body.get("code", 200)
    if code not in _OK_CODES:
        message = redact(str(body.get("message") or body.get("error") or ""), secrets)
        # A code that is not a number cannot be told apart from a server error.
        return BadAnswer(status, "refused", message, code if isinstance(code, int) else 500)
    data = body.get("data")
    if not isinstance(data, dict):
        return BadAnswer(status, "unreadable", f"PiAPI sent an answer without {data_is} (`data`).")
    return data


def refusal_error(refused: BadAnswer, task_id: str | None = None) -> HailuoError:
    """The error a refusal's status names: what the caller does next."""
    status, message, wait_s = refused.status, refused.message, refused.retry_after
    detail = f": {message}" if message else ""
    lowered = message.lower()
    if status == 402 or "credit" in lowered or "balance" in lowered:
        return InsufficientCreditsError(
            f"PiAPI says the account has too few credits{detail}. Top up at "
            "https://piapi.ai/workspace and try again.",
            task_id=task_id,
        )
    if status in (401, 403):
        return AuthenticationError(
            f"PiAPI refused the API key or plan (HTTP {status}){detail}. Check PIAPI_API_KEY "
            "in the server's configuration.",
            task_id=task_id,
        )
    if status == 404:
        return TaskNotFoundError(f"PiAPI knows no such task (HTTP 404){detail}.", task_id=task_id)
    if status == 429:
        wait = f" Retry after {wait_s:g} s." if wait_s is not None else ""
        return RateLimitedError(
            f"PiAPI is rate limiting requests (HTTP 429){detail}.{wait}",
            task_id=task_id,
            retry_after=wait_s,
        )
    if status >= 500:
        return UpstreamUnavailableError(
            f"PiAPI had a server error (HTTP {status}){detail}. Try again shortly.",
            task_id=task_id,
            retry_after=wait_s,
        )
    return InputError(f"PiAPI rejected the request (HTTP {status}){detail}.", task_id=task_id)
