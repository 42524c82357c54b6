"""Streamable HTTP that is never open: bearer tokens, Host/Origin checks, no tokenless public bind.

Anyone who reaches the port can spend PiAPI credits, read the ledger and have local images
uploaded, so:

- with `HAILUO_HTTP_TOKEN` or OAuth (`HAILUO_OAUTH_ISSUER`) set, every request but the open
  paths (webhook, health checks, protected-resource metadata) needs `Authorization: Bearer`
  with a token `hailuo_mcp.auth` accepts (401; 403 without the required scopes);
- Host and Origin are checked on every bind, against the loopback names, the bound address and
  `HAILUO_ALLOWED_HOSTS` (the SDK answers 421 for a foreign Host, 403 for a foreign Origin);
- a bind beyond loopback without a token is refused before anything listens.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import anyio
import uvicorn
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from hailuo_mcp.auth.middleware import BearerAuthMiddleware
from hailuo_mcp.auth.verifier import auth_settings, build_verifier
from hailuo_mcp.config import Settings
from hailuo_mcp.errors import ConfigurationError, HailuoError
from hailuo_mcp.hailuo_server import HailuoServer
from hailuo_mcp.webhooks import WEBHOOK_PATH

logger = logging.getLogger(__name__)

LifespanT = TypeVar("LifespanT")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# Addresses that bind every interface: no client sends them as a Host name.
_WILDCARD_BINDS = {"", "0.0.0.0", "::"}
# A host name or bracketed IPv6 literal, then an optional port or `*` (any port).
_HOST_ENTRY = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(?P<port>[0-9]{1,5}|\*))?")
_DEFAULT_PORTS = {"80": "http", "443": "https"}
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
READY_TIMEOUT_S = 2.0
_METADATA_PATH = "/.well-known/oauth-protected-resource"
_NO_STORE = {"cache-control": "no-store"}
# Refused values of these stop the HTTP server (exit 2) instead of serving with a default.
_HTTP_VARIABLES = (
    "HAILUO_OAUTH_ISSUER",
    "HAILUO_OAUTH_JWKS_URL",
    "HAILUO_RESOURCE_URL",
    "HAILUO_OAUTH_SCOPES",
    "HAILUO_HTTP_STATELESS",
)


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
    if not is_loopback(host) and not settings.http_tokens and not settings.oauth_enabled:
        raise ConfigurationError(
            f"Refusing to serve streamable HTTP on {host}:{port} without a token: anyone who "
            "reaches the port could spend PiAPI credits. Set HAILUO_HTTP_TOKEN to a long random "
            "secret (clients send 'Authorization: Bearer <token>') or HAILUO_OAUTH_ISSUER and "
            "HAILUO_RESOURCE_URL (OAuth), and HAILUO_ALLOWED_HOSTS to the name clients use to "
            "reach this server, or bind to 127.0.0.1."
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


def build_http_app(server: HailuoServer, settings: Settings, host: str, port: int) -> Starlette:
    """The SDK's streamable HTTP app (SSE; stateful unless HAILUO_HTTP_STATELESS) behind our
    Host/Origin rules and bearer auth, with PiAPI's webhook receiver, the health checks and, in
    OAuth mode, the protected-resource metadata as routes of the same app.

    Raises:
        ConfigurationError: the bind is beyond loopback without a token or OAuth, an allowed
            host is not a host name, or an auth setting was refused.
    """
    # A refused auth or HTTP setting stops the server: never serve without the check it asked for.
    settings.check(_HTTP_VARIABLES)
    security = transport_security(settings, host, port)

    async def webhook(request: Request) -> Response:
        runtime = server.runtime
        if runtime is None or runtime.inbox is None:
            return JSONResponse({"error": "webhooks are off (HAILUO_PUBLIC_URL)"}, 404)
        return await runtime.inbox.receive(request)

    server.custom_route(WEBHOOK_PATH, methods=["POST"])(webhook)
    server.custom_route(HEALTH_PATH, methods=["GET"])(_healthz)
    server.custom_route(READY_PATH, methods=["GET"])(_readiness(server))
    # Its lifespan runs `session_manager.run()`: serve it with lifespan on, never mount bare.
    app = server.streamable_http_app(
        transport_security=security, host=host, stateless_http=settings.http_stateless
    )
    open_paths = {WEBHOOK_PATH, HEALTH_PATH, READY_PATH}
    oauth = auth_settings(settings)
    metadata_url = None
    if oauth is not None and oauth.resource_server_url is not None:
        metadata_routes = _metadata_routes(oauth)
        app.router.routes.extend(metadata_routes)
        open_paths.update(route.path for route in metadata_routes)
        metadata_url = str(build_resource_metadata_url(oauth.resource_server_url))
    verifier, keys = build_verifier(settings)
    if settings.http_tokens or oauth is not None:
        app.add_middleware(
            BearerAuthMiddleware,
            verifier=verifier,
            open_paths=open_paths,
            required_scopes=settings.oauth_scopes,
            resource_metadata_url=metadata_url,
        )
    if keys is not None:
        _own_in_lifespan(app, keys)
    return app


def _metadata_routes(oauth: AuthSettings) -> list[Route]:
    """RFC 9728 metadata at the SDK's path (`/.well-known/oauth-protected-resource/mcp`), and
    at the bare well-known path for clients that only look there."""
    assert oauth.resource_server_url is not None
    routes = create_protected_resource_routes(
        resource_url=oauth.resource_server_url,
        authorization_servers=[oauth.issuer_url],
        scopes_supported=oauth.required_scopes,
        resource_name="hailuo-mcp",
    )
    if all(route.path != _METADATA_PATH for route in routes):
        routes.append(Route(_METADATA_PATH, routes[0].endpoint, methods=["GET", "OPTIONS"]))
    return routes


def _own_in_lifespan(app: Starlette, resource: AbstractAsyncContextManager[object]) -> None:
    """Open `resource` around the app's own lifespan (the JWKS client lives as long as the app)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(target: Starlette) -> AsyncIterator[Any]:
        async with resource, inner(target) as state:
            yield state

    app.router.lifespan_context = lifespan


async def _healthz(request: Request) -> Response:
    """Liveness: the process answers HTTP. No dependency is checked (a restart would not help)."""
    return JSONResponse({"status": "ok"}, headers=_NO_STORE)


def _readiness(server: HailuoServer) -> Callable[[Request], Awaitable[Response]]:
    async def readyz(request: Request) -> Response:
        """Readiness: the lifespan's resources are open and the ledger answers now."""
        runtime = server.runtime
        # Reasons are fixed words: this path is open to anyone, so it tells no configuration.
        if runtime is None:
            return _unready("not started")
        if runtime.opened is None:
            return _unready("resources not open")
        try:
            with anyio.fail_after(READY_TIMEOUT_S):
                await runtime.opened.ledger.ping()
        except HailuoError:
            return _unready("ledger unreachable")
        except TimeoutError:
            return _unready("ledger too slow")
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    return readyz


def _unready(reason: str) -> Response:
    return JSONResponse({"status": "unavailable", "reason": reason}, 503, headers=_NO_STORE)


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
