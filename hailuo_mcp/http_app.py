"""Streamable HTTP that is never open: bearer tokens, Host/Origin checks, no tokenless public bind.

Anyone who reaches the port can spend PiAPI credits, read the ledger and have local images
uploaded, so:

- with `HAILUO_HTTP_TOKEN` set, every request needs `Authorization: Bearer <token>` (401);
- Host and Origin are checked on every bind, against the loopback names, the bound address and
  `HAILUO_ALLOWED_HOSTS` (the SDK answers 421 for a foreign Host, 403 for a foreign Origin);
- a bind beyond loopback without a token is refused before anything listens.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Iterable
from typing import TypeVar

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import ConfigurationError
from hailuo_mcp.server import HailuoServer
from hailuo_mcp.webhooks import WEBHOOK_PATH

logger = logging.getLogger(__name__)

LifespanT = TypeVar("LifespanT")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# Addresses that bind every interface: no client sends them as a Host name.
_WILDCARD_BINDS = {"", "0.0.0.0", "::"}
# A host name or bracketed IPv6 literal, then an optional port or `*` (any port).
_HOST_ENTRY = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(?P<port>[0-9]{1,5}|\*))?")
_DEFAULT_PORTS = {"80": "http", "443": "https"}
_REALM = 'Bearer realm="hailuo-mcp"'


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_patterns(entry: str, *, variable: str) -> list[str]:
    """The Host values one entry accepts: `name` and `name:*` mean any port."""
    entry = entry.strip().lower()
    try:
        # A bare IPv6 literal ("fe80::1") has colons that are not a port separator.
        entry = f"[{ipaddress.IPv6Address(entry)}]"
    except ValueError:
        pass
    match = _HOST_ENTRY.fullmatch(entry)
    if match is None:
        raise ConfigurationError(
            f"{variable} entry {entry!r} is not a host name: write names such as "
            "mcp.example.com or mcp.example.com:8443, without a scheme, path or wildcard."
        )
    name, port = match["name"], match["port"]
    if port is None or port == "*":
        return [name, f"{name}:*"]
    # Clients leave a default port out of Host, so `name:443` also accepts `name`.
    return [f"{name}:{port}", name] if port in _DEFAULT_PORTS else [f"{name}:{port}"]


def _origins(pattern: str) -> list[str]:
    """The browser Origins that belong to one Host pattern."""
    name, colon, port = pattern.rpartition(":")
    if colon and port in _DEFAULT_PORTS:
        # Browsers omit the scheme's default port from Origin.
        return [f"{_DEFAULT_PORTS[port]}://{name}"]
    return [f"http://{pattern}", f"https://{pattern}"]


def _bound_name(host: str, port: int) -> str | None:
    """The Host a client sends for a concrete bind, or None for a wildcard bind."""
    if host in _WILDCARD_BINDS:
        return None
    name = f"[{host}]" if ":" in host else host
    return f"{name.lower()}:{port}"


def transport_security(settings: Settings, host: str, port: int) -> TransportSecuritySettings:
    """Host/Origin rules for this bind; raise ConfigurationError if it would be open to anyone."""
    if not is_loopback(host) and not settings.http_tokens:
        raise ConfigurationError(
            f"Refusing to serve streamable HTTP on {host}:{port} without a token: anyone who "
            "reaches the port could spend PiAPI credits. Set HAILUO_HTTP_TOKEN to a long random "
            "secret (clients send 'Authorization: Bearer <token>') and HAILUO_ALLOWED_HOSTS to "
            "the name clients use to reach this server, or bind to 127.0.0.1."
        )
    hosts: list[str] = []
    for name in LOOPBACK_NAMES:
        hosts += [name, f"{name}:*"]
    if (bound := _bound_name(host, port)) is not None:
        hosts.append(bound)
    for entry in settings.allowed_hosts:
        hosts += _host_patterns(entry, variable="HAILUO_ALLOWED_HOSTS")
    if host in _WILDCARD_BINDS and not settings.allowed_hosts:
        logger.warning(
            "Serving on %s: only loopback Host names are accepted (others get 421) until "
            "HAILUO_ALLOWED_HOSTS names this server as its clients reach it",
            host or "all interfaces",
        )
    hosts = list(dict.fromkeys(hosts))
    origins = list(dict.fromkeys(origin for pattern in hosts for origin in _origins(pattern)))
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class BearerTokenMiddleware:
    """Pure ASGI: refuse any request without `Authorization: Bearer <one of the tokens>`."""

    def __init__(self, app: ASGIApp, tokens: Iterable[SecretStr]) -> None:
        self.app = app
        # Digests have one length, so comparing them reveals nothing about a token's length.
        self._digests = [_digest(t.get_secret_value().encode()) for t in tokens]
        if not self._digests:
            raise ValueError("BearerTokenMiddleware needs at least one token")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # PiAPI cannot send our token: its deliveries prove themselves with the webhook secret.
        is_webhook = scope["type"] == "http" and scope.get("path") == WEBHOOK_PATH
        if scope["type"] == "lifespan" or is_webhook or self._authorized(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            presented = _presented(scope) is not None
            # Path and peer only: headers (the credentials) and the query never reach a log.
            client = scope.get("client")
            logger.info(
                "Refused %s %s from %s: %s bearer token",
                scope.get("method", "-"),
                scope.get("path", "-"),
                client[0] if client else "-",
                "wrong" if presented else "no",
            )
            await _refuse(send, presented=presented)

    def _authorized(self, scope: Scope) -> bool:
        presented = _presented(scope)
        if presented is None:
            return False
        digest = _digest(presented)
        matched = False
        for expected in self._digests:
            # `|=`, not any(): compare against every token so timing never says which matched.
            matched |= hmac.compare_digest(digest, expected)
        return matched


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _presented(scope: Scope) -> bytes | None:
    """The credentials of the first `Authorization: Bearer ...` header, if any."""
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            credentials = credentials.strip()
            return credentials if scheme.lower() == b"bearer" and credentials else None
    return None


async def _refuse(send: Send, *, presented: bool) -> None:
    """Answer 401 (RFC 6750): never echo what the client sent."""
    challenge = f'{_REALM}, error="invalid_token"' if presented else _REALM
    body = json.dumps(
        {
            "error": "invalid_token" if presented else "unauthorized",
            "error_description": "Send Authorization: Bearer <token> (HAILUO_HTTP_TOKEN).",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_http_app(server: HailuoServer, settings: Settings, host: str, port: int) -> Starlette:
    """The SDK's streamable HTTP app (SSE, stateful) behind our Host/Origin rules and tokens,
    with PiAPI's webhook receiver as a route of the same app.

    Raises:
        ConfigurationError: the bind is beyond loopback without a token, or an allowed host is
            not a host name.
    """
    security = transport_security(settings, host, port)

    async def webhook(request: Request) -> Response:
        runtime = server.runtime
        if runtime is None or runtime.inbox is None:
            return JSONResponse({"error": "webhooks are off (HAILUO_PUBLIC_URL)"}, 404)
        return await runtime.inbox.receive(request)

    server.custom_route(WEBHOOK_PATH, methods=["POST"])(webhook)
    # Its lifespan runs `session_manager.run()`: serve it with lifespan on, never mount bare.
    app = server.streamable_http_app(transport_security=security, host=host)
    if settings.http_tokens:
        app.add_middleware(BearerTokenMiddleware, tokens=settings.http_tokens)
    return app


async def serve_http(app: ASGIApp, host: str, port: int) -> None:
    """Serve `app` with uvicorn until SIGINT/SIGTERM."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        # Keep the process's one stderr format (cli.main); access lines carry paths only.
        log_config=None,
        lifespan="on",
    )
    await uvicorn.Server(config).serve()
