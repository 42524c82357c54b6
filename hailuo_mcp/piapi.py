"""PiAPIClient: PiAPI's task API (create, get, account, upload) over one httpx.AsyncClient.

Nothing here retries. Each operation decides what a failure means in one mapper of its own
(`_create_failure`, `_get_failure`, `_account_failure`, `_upload_failure`), before raising:

* create: a connection that failed before any byte left is UpstreamUnavailableError ("no task
  was created"). Anything after the request may have been sent (a read error or timeout, a 2xx
  answer that is unreadable, has no task id or carries a server-error code) is
  AmbiguousCreateError: a task may exist and be charged, so it is never retried. HTTP 404 is a
  ConfigurationError naming PIAPI_BASE_URL; any other refusal is the kind its status names.
* get, account, upload: safe to repeat, so transport failures, 5xx, 429 and unreadable answers
  are RetryableErrors (a get's errors name its task); other refusals are the kind their status
  names. A redirect answered to any of them is not followed (it reads as unreadable).

Every error keeps its cause (`raise ... from cause`): the httpx exception, or the JSON error of
an unreadable body. Neither text carries a secret: the key travels in a header, which neither
an httpx exception's text nor a traceback shows.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from pydantic import SecretStr

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import (
    AmbiguousCreateError,
    ConfigurationError,
    HailuoError,
    InputError,
    MalformedResponseError,
    UpstreamUnavailableError,
)
from hailuo_mcp.http_clients import (
    HttpClientOwner,
    LazyHttpClient,
    httpx,
    new_client,
    upstream_timeout,
)
from hailuo_mcp.models import Task, VideoRequest, is_valid_task_id
from hailuo_mcp.upstream import (
    BadAnswer,
    Failure,
    RequestGate,
    cause_of,
    read_data,
    redact,
    refusal_error,
)

# Requests in flight at once; more wait at the gate (upstream.RequestGate says why). 64
# connections carry ~200 GETs/s at a 300 ms round trip; 1000 tasks need ~150.
MAX_CONNECTIONS = 64


def _not_sent(failure: Failure) -> bool:
    """Whether httpx raised before any byte of the request left: a create certainly did not
    happen. A ProxyError is a refused CONNECT tunnel, so the request never reached PiAPI either.
    """
    return isinstance(
        failure,
        (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.ProxyError,
            httpx.UnsupportedProtocol,
        ),
    )


_MAYBE_CHARGED = (
    "A task may have been created and may be charged; it was NOT retried. Check your PiAPI "
    "task history before generating again."
)


def missing_key_error() -> ConfigurationError:
    """The error every tool that needs the key answers when PIAPI_API_KEY is unset."""
    return ConfigurationError(
        "PIAPI_API_KEY is not set. Get a key at https://piapi.ai/workspace/key and add "
        '"PIAPI_API_KEY": "<your key>" to the "env" block of this server in your MCP client '
        "configuration, then restart the server. (HAILUO_DEMO=1 runs on a built-in emulator "
        "without a key.)"
    )


class PiAPIClient(HttpClientOwner):
    """Async client for PiAPI's task API, used as `async with PiAPIClient(settings) as c`."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._http_client = LazyHttpClient(self._new_client, name="the PiAPI client")
        self._gate = RequestGate(MAX_CONNECTIONS, settings.request_timeout * 2)
        self._key = settings.api_key
        self._secrets: tuple[SecretStr | None, ...] = (settings.api_key, settings.webhook_secret)
        # A view paying with a caller's own key shares its parent's connections and gate.
        self._parent: PiAPIClient | None = None

    def with_key(self, key: SecretStr) -> PiAPIClient:
        """This client paying with `key` (a caller's own PiAPI key, for its requests only)."""
        view = copy.copy(self)
        view._key = key
        view._secrets = (key, *self._secrets)
        view._parent = self
        return view

    @property
    def has_key(self) -> bool:
        """Whether requests can be authenticated (the server's key or the caller's)."""
        return self._key is not None

    async def aclose(self) -> None:
        """Close the connections; a view's are its parent's, so only the parent closes them."""
        if self._parent is None:
            await super().aclose()

    def _new_client(self) -> httpx.AsyncClient:
        # No default headers but the user agent: the key is added per request, by `_call` only.
        return new_client(
            upstream_timeout(self._settings),
            connections=MAX_CONNECTIONS,
            transport=self._transport,
        )

    def _http(self) -> httpx.AsyncClient:
        """The httpx client, built on first use: its TLS context costs ~50 ms and ~3 MB."""
        if self._parent is not None:
            return self._parent._http()
        return self._http_client.get()

    def _auth_headers(self) -> dict[str, str]:
        key = self._key
        if key is None:
            raise missing_key_error()
        return {"x-api-key": key.get_secret_value()}

    def _read_task(self, data: dict[str, Any]) -> Task:
        """A task object; its upstream error message is redacted like any other message."""
        task = Task.from_upstream(data)
        if task.error_message:
            message = redact(task.error_message, self._secrets)
            task = task.model_copy(update={"error_message": message})
        return task

    async def _call(
        self, method: str, url: str, *, body: dict[str, Any] | None = None, data_is: str
    ) -> dict[str, Any] | Failure:
        """Send one request through the gate; return its `data`, or what went wrong.

        Nothing is raised for a transport failure or a bad answer: the operation decides what
        it means. `data_is` names the `data` object in the sentence of an answer without it.
        """
        headers = self._auth_headers()
        try:
            async with self._gate.slot():
                response = await self._http().request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return exc
        return read_data(response, data_is=data_is, secrets=self._secrets)

    @staticmethod
    def _answer_error(bad: BadAnswer, task_id: str | None = None) -> HailuoError:
        """The error for a bad answer to a request that is safe to repeat (not a create)."""
        if bad.kind == "refused":
            return refusal_error(bad, task_id)
        return MalformedResponseError(bad.message, task_id=task_id)

    # create

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
        outcome = await self._call("POST", url, body=body, data_is="a task object")
        if isinstance(outcome, dict):
            task = self._read_task(outcome)
            if is_valid_task_id(task.task_id):
                return task
            outcome = BadAnswer(200, "incomplete", "no usable task id")
        raise self._create_failure(outcome, url) from cause_of(outcome)

    def _create_failure(self, failure: Failure, url: str) -> HailuoError:
        """Not sent (safe to try again), refused (no task), or maybe sent (never retried)."""
        if _not_sent(failure):
            return UpstreamUnavailableError(
                f"Could not reach PiAPI ({type(failure).__name__}); no task was created."
            )
        if isinstance(failure, httpx.HTTPError):
            return AmbiguousCreateError(
                "The create request was sent but PiAPI's answer was lost "
                f"({type(failure).__name__}). A task may have been created and may be charged. "
                "It was NOT retried to avoid paying twice: check your PiAPI task history "
                "(https://piapi.ai/workspace) before generating again."
            )
        if failure.kind == "refused" and failure.status == 404:
            # A 404 to the create is not an unknown task: the URL is wrong.
            return ConfigurationError(
                f"PiAPI answered HTTP 404 to the create at {url}: PIAPI_BASE_URL "
                f"({self._settings.base_url}) is probably wrong; it must be the API's base URL, "
                "e.g. https://api.piapi.ai. No task was created."
            )
        if failure.kind == "refused":
            refusal = refusal_error(failure)
            if failure.success and isinstance(refusal, UpstreamUnavailableError):
                # A server-error code inside a success answer: the task may exist with an id
                # we never learnt, so a retry could pay twice.
                return AmbiguousCreateError(
                    "PiAPI's success answer to the create carried a server-error code instead "
                    f"of a task. {_MAYBE_CHARGED}"
                )
            return refusal
        if failure.kind == "incomplete":
            return AmbiguousCreateError(
                "PiAPI accepted the create but returned no usable task id; it was NOT retried. "
                "Check your PiAPI task history before generating again."
            )
        if not failure.success:
            # A redirect, which is not followed: the create never reached the API.
            return MalformedResponseError(failure.message)
        return AmbiguousCreateError(f"{failure.message} {_MAYBE_CHARGED}")

    # get

    async def get(self, task_id: str) -> Task:
        """Fetch a task's current state once; every failure names the task."""
        if not is_valid_task_id(task_id):
            raise InputError(f"task_id {task_id[:80]!r} is not a valid PiAPI task id")
        url = self._settings.base_url.rstrip("/") + f"/api/v1/task/{task_id}"
        outcome = await self._call("GET", url, data_is="a task object")
        if not isinstance(outcome, dict):
            raise self._get_failure(outcome, task_id) from cause_of(outcome)
        task = self._read_task(outcome)
        if task.task_id != task_id:
            task = task.model_copy(update={"task_id": task_id})
        return task

    def _get_failure(self, failure: Failure, task_id: str) -> HailuoError:
        """A look is safe to repeat: every passing fault is retryable."""
        if isinstance(failure, httpx.TimeoutException):
            return UpstreamUnavailableError(
                f"PiAPI did not answer in time ({type(failure).__name__}).", task_id=task_id
            )
        if isinstance(failure, httpx.HTTPError):
            return UpstreamUnavailableError(
                f"The connection to PiAPI failed ({type(failure).__name__}).", task_id=task_id
            )
        return self._answer_error(failure, task_id)

    # account

    async def account(self) -> dict[str, Any]:
        """`data` of GET /account/info: the balance in USD and the credit figures."""
        url = self._settings.base_url.rstrip("/") + "/account/info"
        outcome = await self._call("GET", url, data_is="the account figures")
        if not isinstance(outcome, dict):
            raise self._account_failure(outcome) from cause_of(outcome)
        return outcome

    def _account_failure(self, failure: Failure) -> HailuoError:
        """Reading the balance is safe to repeat: a passing fault is retryable."""
        if isinstance(failure, httpx.HTTPError):
            return UpstreamUnavailableError(
                f"PiAPI's account endpoint did not answer ({type(failure).__name__})."
            )
        return self._answer_error(failure)

    # upload

    async def upload(self, file_name: str, data: bytes) -> str:
        """Upload a file through the contract's upload endpoint; return its (ephemeral) URL."""
        body = {"file_name": file_name, "file_data": base64.b64encode(data).decode("ascii")}
        outcome = await self._call(
            "POST", self._settings.upload_url, body=body, data_is="the uploaded file"
        )
        if isinstance(outcome, dict):
            url = outcome.get("url")
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                return url
            outcome = BadAnswer(200, "incomplete", "PiAPI's upload answer carried no URL.")
        raise self._upload_failure(outcome) from cause_of(outcome)

    def _upload_failure(self, failure: Failure) -> HailuoError:
        """An upload costs nothing and a repeat only makes another ephemeral file: retryable."""
        if isinstance(failure, httpx.HTTPError):
            return UpstreamUnavailableError(
                f"The image upload to PiAPI failed ({type(failure).__name__})."
            )
        return self._answer_error(failure)
