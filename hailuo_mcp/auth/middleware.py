"""Pure ASGI: every HTTP path needs a bearer token the verifier accepts, but a few open ones.

Ours rather than the SDK's `MCPServer(token_verifier=..., auth=...)` path, which guards only
`/mcp` (any other path answers 404 to anyone, not 401), answers a request without credentials
with `error="invalid_token"` (RFC 6750 section 3.1 says to name no error then), logs no refusal
and needs an OAuth issuer even for static tokens. We reuse its parts instead: the TokenVerifier
protocol, `AuthenticatedUser` in `scope["user"]` (the session manager binds each session to its
caller with it) and `AuthContextMiddleware`, so tools read the caller with the SDK's
`get_access_token()` exactly as on the SDK's own path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import TokenVerifier
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from hailuo_mcp.auth.verifier import has_scopes

logger = logging.getLogger(__name__)

_REALM = 'Bearer realm="hailuo-mcp"'


class BearerAuthMiddleware:
    """Refuse any request without an accepted `Authorization: Bearer ...` (401, or 403 for
    missing scopes); the caller's AccessToken reaches the tools through the SDK's context."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        *,
        open_paths: Collection[str] = (),
        required_scopes: Sequence[str] = (),
        resource_metadata_url: str | None = None,
    ) -> None:
        self._app = app
        # Sets the SDK's auth context var from scope["user"] for the request's tasks.
        self._with_caller = AuthContextMiddleware(app)
        self._verifier = verifier
        self._open_paths = frozenset(open_paths)
        self._required = list(required_scopes)
        self._challenge = _REALM
        if resource_metadata_url is not None:
            # RFC 9728 section 5.1: where a client learns which issuer to ask for a token.
            self._challenge += f', resource_metadata="{resource_metadata_url}"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (
            scope["type"] == "http" and scope.get("path") in self._open_paths
        ):
            await self._app(scope, receive, send)
            return
        presented = _presented(scope)
        caller = None if presented is None else await self._verifier.verify_token(presented)
        if caller is not None and has_scopes(caller, self._required):
            scope["user"] = AuthenticatedUser(caller)
            scope["auth"] = AuthCredentials(caller.scopes)
            await self._with_caller(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if presented is None:
            why = "no bearer token"
        elif caller is None:
            why = "wrong bearer token"
        else:
            why = f"bearer token of {caller.client_id} without the required scopes"
        # Path and peer only: headers (the credentials) and the query never reach a log.
        client = scope.get("client")
        logger.info(
            "Refused %s %s from %s: %s",
            scope.get("method", "-"),
            scope.get("path", "-"),
            client[0] if client else "-",
            why,
        )
        if presented is None:
            await self._refuse(send, 401, "unauthorized", self._challenge)
        elif caller is None:
            await self._refuse(
                send, 401, "invalid_token", f'{self._challenge}, error="invalid_token"'
            )
        else:
            needed = " ".join(self._required)
            challenge = f'{self._challenge}, error="insufficient_scope", scope="{needed}"'
            await self._refuse(send, 403, "insufficient_scope", challenge)

    @staticmethod
    async def _refuse(send: Send, status: int, error: str, challenge: str) -> None:
        """Answer per RFC 6750 section 3: never echo what the client sent."""
        description = {
            "unauthorized": "Send Authorization: Bearer <token>.",
            "invalid_token": "The bearer token is not accepted.",
            "insufficient_scope": "The bearer token lacks a required scope.",
        }[error]
        body = json.dumps({"error": error, "error_description": description}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _presented(scope: Scope) -> str | None:
    """The credentials of the first `Authorization: Bearer ...` header, if any."""
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            credentials = credentials.strip()
            if scheme.lower() != b"bearer" or not credentials:
                return None
            try:
                text: str = credentials.decode("ascii")
            except UnicodeDecodeError:
                return None
            return text
    return None
