"""The error tree, split by what the caller does next.

HailuoError
├── InputError               fix the arguments (our validation or an upstream 400)
├── ConfigurationError       fix the server's configuration (no API key, bad folder)
├── AuthenticationError      fix the API key or plan (401 / 403)
├── InsufficientCreditsError top up PiAPI credits (402)
├── OverBudgetError          raise a cap (HAILUO_MAX_*), or wait for tomorrow
├── ConfirmationUnavailableError the price needs a confirmation this client cannot give
├── TaskNotFoundError        the task id is unknown upstream (404)
├── RetryableError           try again later
│   ├── RateLimitedError     429, carries retry_after
│   └── UpstreamUnavailableError 5xx, timeouts, connection failures
│       └── MalformedResponseError an answer we cannot read (not JSON, no `data`)
├── AmbiguousCreateError     the create may or may not have reached PiAPI: never retried blindly
├── TaskFailedError          the task ended failed upstream (nothing charged)
├── DownloadError            the video exists but could not be fetched (404, cut short)
└── StorageError             the video could not be written here (permissions, disk full)

Every error carries `task_id` (None before a task exists) so an answer after a create always
names the task the user may have paid for.
"""

from __future__ import annotations


class HailuoError(Exception):
    """Base of every error hailuo-mcp reports; `message` is safe to show to a user."""

    kind = "error"

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id

    def with_task(self, task_id: str) -> HailuoError:
        """Attach the task id when an error raised below the flow reaches it."""
        if self.task_id is None:
            self.task_id = task_id
        return self


class InputError(HailuoError):
    """The request breaks a rule; nothing was sent upstream (or upstream answered 400)."""

    kind = "invalid_input"


class ConfigurationError(HailuoError):
    """The server is not configured for this call (e.g. PIAPI_API_KEY is unset)."""

    kind = "configuration"


class AuthenticationError(HailuoError):
    """PiAPI refused the API key or the plan (401 / 403)."""

    kind = "authentication"


class InsufficientCreditsError(HailuoError):
    """PiAPI has too few credits for the task (402)."""

    kind = "insufficient_credits"


class OverBudgetError(HailuoError):
    """The call would pass a spending cap the server was given; nothing was created."""

    kind = "over_budget"


class ConfirmationUnavailableError(HailuoError):
    """The price needs the user's confirmation and this client cannot ask; nothing created."""

    kind = "confirmation_required"


class TaskNotFoundError(HailuoError):
    """PiAPI knows no task with this id."""

    kind = "task_not_found"


class RetryableError(HailuoError):
    """A passing fault: the same request may succeed later."""

    kind = "upstream_unavailable"

    def __init__(
        self, message: str, *, task_id: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, task_id=task_id)
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    """PiAPI answered 429; `retry_after` holds its Retry-After in seconds when given."""

    kind = "rate_limited"


class UpstreamUnavailableError(RetryableError):
    """PiAPI answered 5xx, timed out, dropped the connection or sent an unreadable answer."""

    kind = "upstream_unavailable"


class MalformedResponseError(UpstreamUnavailableError):
    """PiAPI's answer could not be read (a poll is retried; a create's is ambiguous instead)."""


class AmbiguousCreateError(HailuoError):
    """The create request was sent but no answer came back: a task may exist and be charged."""

    kind = "ambiguous_create"


class TaskFailedError(HailuoError):
    """The task ended `failed` upstream; `upstream_code` is PiAPI's error code."""

    kind = "task_failed"

    def __init__(
        self, message: str, *, task_id: str | None = None, upstream_code: int | None = None
    ) -> None:
        super().__init__(message, task_id=task_id)
        self.upstream_code = upstream_code


class DownloadError(HailuoError):
    """The finished video could not be fetched from its (ephemeral) URL."""

    kind = "download_failed"


class StorageError(HailuoError):
    """The video could not be written to the output folder, or the ledger could not be used."""

    kind = "storage_failed"
