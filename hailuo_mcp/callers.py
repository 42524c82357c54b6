"""Who is calling: the principal that owns the rows a request makes, and the PiAPI key it pays with.

Over stdio, and over HTTP without any credentials, the caller is the machine's user: `LOCAL`.
Over HTTP a request may carry:

- an access token (a static `HAILUO_HTTP_TOKEN` or an OAuth JWT, checked by the SDK's auth
  middleware before any tool runs): an OAuth caller is its issuer and subject;
- its own PiAPI key in `X-PiAPI-Key`: that request is paid with it (never stored, never logged),
  and without an OAuth identity the caller is the key itself, as a hash.

A static token shared by a team says nothing about who holds it, so it identifies a caller only
when no key does. One principal never sees, resumes or pays for another's tasks: the ledger
filters every read that answers a caller by `Caller.owner`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from hailuo_mcp.errors import InputError
from hailuo_mcp.ledger.records import LOCAL_OWNER

KEY_HEADER = "x-piapi-key"
# PiAPI keys are hex-ish tokens; anything longer or with odd bytes is refused, not forwarded.
_KEY_MAX_CHARS = 256


@dataclass(frozen=True)
class Caller:
    """The principal of one request, and the key it pays with (None: the server's key)."""

    owner: str
    piapi_key: SecretStr | None = field(default=None, repr=False)

    @property
    def is_local(self) -> bool:
        """The machine's own user (stdio, or HTTP with no credentials)."""
        return self.owner == LOCAL_OWNER


LOCAL = Caller(LOCAL_OWNER)


def _hash(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return digest[:24]


def key_owner(key: str) -> str:
    """The owner of tasks paid with `key` when no OAuth identity says more."""
    return f"key:{_hash('piapi-key', key)}"


def caller_from(headers: Mapping[str, str] | None, token: Any | None) -> Caller:
    """The caller of a request with these headers and (SDK) access token.

    Raises:
        InputError: the X-PiAPI-Key header is empty, too long or not printable ASCII.
    """
    key = _key_from(headers)
    if token is not None and getattr(token, "subject", None):
        issuer = str((token.claims or {}).get("iss", ""))
        return Caller(f"oauth:{_hash(issuer, token.subject)}", key)
    if key is not None:
        return Caller(key_owner(key.get_secret_value()), key)
    if token is not None:
        # A static token (client_id "token:<digest>") or a JWT without a subject.
        return Caller(f"client:{_hash(str(token.client_id))}")
    return LOCAL


def _key_from(headers: Mapping[str, str] | None) -> SecretStr | None:
    if headers is None:
        return None
    raw = headers.get(KEY_HEADER)
    if raw is None:
        return None
    raw = raw.strip()
    if not raw or len(raw) > _KEY_MAX_CHARS or not raw.isascii() or not raw.isprintable():
        # Never echo the value: it is (meant to be) a secret.
        raise InputError(
            "X-PiAPI-Key header: must be your PiAPI API key (printable ASCII, at most "
            f"{_KEY_MAX_CHARS} characters), or left out to use the server's key"
        )
    return SecretStr(raw)


def caller_of(request_context: Any) -> Caller:
    """The caller of the request behind an SDK request context (a tool's `ctx.request_context`,
    or a handler's `ServerRequestContext`)."""
    request = getattr(request_context, "request", None)
    if request is None:
        return LOCAL  # stdio: no headers, no tokens
    headers = getattr(request, "headers", None)
    return caller_from(headers, _access_token(request))


def _access_token(request: Any) -> Any | None:
    """The SDK's verified access token for this HTTP request, if any."""
    # Imported here: the auth middleware module is only needed over HTTP.
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if isinstance(user, AuthenticatedUser):
        return user.access_token
    return get_access_token()
