"""The issuer's signing keys (JWKS), fetched with httpx, cached for a while, refetched on rotation.

Where the keys are: HAILUO_OAUTH_JWKS_URL, or the `jwks_uri` of the issuer's metadata (RFC 8414
`/.well-known/oauth-authorization-server`, then OpenID Connect's
`/.well-known/openid-configuration`), whose `issuer` must be the configured one.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import anyio
import jwt

from hailuo_mcp.http_clients import HttpClientOwner, LazyHttpClient, httpx, new_client

logger = logging.getLogger(__name__)

# Asymmetric algorithms only: `none` and HS* (a shared secret) are never accepted.
ALGORITHMS = ("RS256", "ES256")
# The algorithm a key without `alg` is used with, by key type (and curve).
_DEFAULT_ALG: dict[tuple[object, object], str] = {("RSA", None): "RS256", ("EC", "P-256"): "ES256"}
TTL_SECONDS = 300.0
# An unknown `kid` refetches at once, but a flood of made-up kids cannot make us hammer the
# issuer: at most one such refetch per this many seconds.
REFETCH_SECONDS = 30.0
_MAX_BYTES = 512 * 1024


def _new_client() -> httpx.AsyncClient:
    # Our own client: the SDK's HTTP stack (httpx2) is not ours to configure. A few
    # connections: keys are fetched once per TTL.
    return new_client(httpx.Timeout(5.0, connect=3.0), connections=4, user_agent=False)


class JwksError(Exception):
    """The keys could not be fetched or read (the message names the URL, never a token)."""


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be: RFC 8414 (path after the well-known), then OIDC."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", "")
    )
    oidc = issuer.rstrip("/") + "/.well-known/openid-configuration"
    return [rfc8414, oidc]


def safe_url(url: object) -> bool:
    """Whether keys may be fetched from `url`: https, or http on a loopback host (tests)."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS document by kid; keys we would never accept are left out."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("the JWKS document has no `keys` list")
    found: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        alg = entry.get("alg") or _DEFAULT_ALG.get((entry.get("kty"), entry.get("crv")))
        if alg not in ALGORITHMS:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=alg)
        except jwt.PyJWTError as exc:
            logger.warning("JWKS key %r skipped: %s", entry.get("kid"), exc)
            continue
        found[str(entry.get("kid", ""))] = key
    return found


class JwksCache(HttpClientOwner):
    """An async context manager owning one httpx client; `key(kid)` answers a signing key."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        *,
        ttl: float = TTL_SECONDS,
        refetch_after: float = REFETCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._ttl = ttl
        self._refetch_after = refetch_after
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._forced_at: float | None = None
        self._lock = anyio.Lock()
        self._http_client = LazyHttpClient(_new_client, name="the key cache")
        # Fetches only between enter and exit (`_get_json` answers "not open" before).
        self._entered = False

    async def __aenter__(self) -> Self:
        self._entered = True
        # Built now, not on the first fetch: the lifespan pays for the TLS context, not the first
        # caller's request.
        self._http_client.get()
        return self

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key with this kid, fetching the set when stale or when the kid is new to us."""
        fresh = self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl
        if fresh and kid in self._keys:
            # The common case never waits behind a fetch another request started.
            return self._keys[kid]
        async with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            if stale:
                await self._refresh(now)
            elif kid not in self._keys and (
                self._forced_at is None or now - self._forced_at >= self._refetch_after
            ):
                # Keys rotated since the last fetch: look once more.
                self._forced_at = now
                await self._refresh(now)
            return self._keys.get(kid)

    async def _refresh(self, now: float) -> None:
        try:
            self._keys = _keys(await self._get_json(await self._keys_url()))
        except JwksError as exc:
            # Keep the keys we had: an issuer outage must not lock everyone out at once.
            logger.warning("could not refresh the OAuth signing keys: %s", exc)
            # Try again after `refetch_after`, not on every request meanwhile.
            self._fetched_at = now - max(self._ttl - self._refetch_after, 0.0)
            return
        self._fetched_at = now

    async def _keys_url(self) -> str:
        if self._jwks_url is not None:
            return self._jwks_url
        for url in metadata_urls(self._issuer):
            try:
                metadata = await self._get_json(url)
            except JwksError as exc:
                logger.debug("no issuer metadata: %s", exc)
                continue
            if not isinstance(metadata, dict) or metadata.get("issuer") != self._issuer:
                # RFC 8414 section 3.3: metadata naming another issuer is not this issuer's.
                logger.warning("issuer metadata at %s names another issuer", url)
                continue
            jwks_uri = metadata.get("jwks_uri")
            if isinstance(jwks_uri, str) and safe_url(jwks_uri):
                self._jwks_url = jwks_uri
                return jwks_uri
            logger.warning("issuer metadata at %s has no https jwks_uri", url)
        raise JwksError(
            f"the issuer {self._issuer} publishes no jwks_uri; set HAILUO_OAUTH_JWKS_URL"
        )

    async def _get_json(self, url: str) -> Any:
        if not self._entered or self._http_client.closed:
            raise JwksError("the key cache is not open")
        try:
            answer = await self._http_client.get().get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise JwksError(f"{url}: {type(exc).__name__}") from exc
        if answer.status_code != 200:
            raise JwksError(f"{url} answered {answer.status_code}")
        if len(answer.content) > _MAX_BYTES:
            raise JwksError(f"{url} answered more than {_MAX_BYTES} bytes")
        try:
            return answer.json()
        except ValueError as exc:
            raise JwksError(f"{url} did not answer JSON") from exc
