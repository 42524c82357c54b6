"""One TokenVerifier for the HTTP server: the static tokens first, then the issuer's JWTs."""

from __future__ import annotations

from collections.abc import Sequence

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from hailuo_mcp.auth.jwks import JwksCache
from hailuo_mcp.auth.jwt_verifier import JwtVerifier
from hailuo_mcp.auth.static_tokens import StaticTokenVerifier
from hailuo_mcp.config import Settings


class CallerVerifier:
    """A TokenVerifier accepting a HAILUO_HTTP_TOKEN or, in OAuth mode, a JWT of the issuer."""

    def __init__(self, static: StaticTokenVerifier, jwt: JwtVerifier | None = None) -> None:
        self._static = static
        self._jwt = jwt

    async def verify_token(self, token: str) -> AccessToken | None:
        """The caller of `token`, or None."""
        caller = await self._static.verify_token(token)
        if caller is None and self._jwt is not None:
            caller = await self._jwt.verify_token(token)
        return caller


def has_scopes(token: AccessToken, required: Sequence[str]) -> bool:
    """Whether the token carries every required scope."""
    return all(scope in token.scopes for scope in required)


def auth_settings(settings: Settings) -> AuthSettings | None:
    """The SDK's description of our resource-server mode, or None without OAuth."""
    if settings.oauth_issuer is None or settings.resource_url is None:
        return None
    return AuthSettings(
        issuer_url=settings.oauth_issuer,  # type: ignore[arg-type]  # pydantic parses the str
        resource_server_url=settings.resource_url,  # type: ignore[arg-type]  # likewise
        required_scopes=list(settings.oauth_scopes) or None,
        # JwtVerifier checks `aud` itself.
        validate_token_resource=False,
    )


def build_verifier(settings: Settings) -> tuple[CallerVerifier, JwksCache | None]:
    """The verifier for these settings and, in OAuth mode, the key cache it needs opened."""
    static = StaticTokenVerifier(settings.http_tokens, settings.oauth_scopes)
    if settings.oauth_issuer is None or settings.resource_url is None:
        return CallerVerifier(static), None
    keys = JwksCache(settings.oauth_issuer, settings.oauth_jwks_url)
    verifier = JwtVerifier(keys, issuer=settings.oauth_issuer, audience=settings.resource_url)
    return CallerVerifier(static, verifier), keys
