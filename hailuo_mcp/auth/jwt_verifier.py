"""OAuth 2.1 access tokens as JWTs: the issuer's signature, issuer, audience, times, scopes."""

from __future__ import annotations

import logging
from typing import Any

import jwt
from mcp.server.auth.provider import AccessToken

from hailuo_mcp.auth.jwks import ALGORITHMS, JwksCache

logger = logging.getLogger(__name__)

# Clocks of the issuer and this server may differ a little.
LEEWAY_SECONDS = 30


def token_scopes(claims: dict[str, Any]) -> list[str]:
    """Scopes of a token: `scope` (space-separated, RFC 9068) or `scp` (a list, or a string)."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [str(item) for item in raw]
    return []


class JwtVerifier:
    """A TokenVerifier for JWTs the issuer signed for this resource (None for anything else).

    Required scopes are not checked here: a valid token without them is a 403, not a 401, so
    the HTTP middleware checks them on the AccessToken.
    """

    def __init__(
        self,
        keys: JwksCache,
        *,
        issuer: str,
        audience: str,
        leeway: float = LEEWAY_SECONDS,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        # A trailing slash is the same resource to a person; accept either spelling of it.
        base = audience.rstrip("/")
        self._audiences = [base, base + "/"]
        self._leeway = leeway

    async def verify_token(self, token: str) -> AccessToken | None:
        """The caller of a valid token, or None (the reason logged, never the token)."""
        try:
            claims = await self._claims(token)
        except jwt.PyJWTError as exc:
            logger.info("refused a JWT: %s", exc)
            return None
        client_id = claims.get("client_id", claims.get("azp"))
        subject = claims.get("sub")
        return AccessToken(
            token=token,
            client_id=str(client_id) if client_id is not None else "unknown",
            scopes=token_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self._audience,
            subject=str(subject) if subject is not None else None,
            claims=claims,
        )

    async def _claims(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key = await self._keys.key(str(kid) if kid is not None else "")
        if key is None:
            raise jwt.InvalidKeyError(f"no signing key with kid {kid!r}")
        if key.algorithm_name != alg:
            raise jwt.InvalidAlgorithmError(f"key {kid!r} is not for {alg}")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],
            audience=self._audiences,
            issuer=self._issuer,
            leeway=self._leeway,
            options={"require": ["exp", "iss", "aud"]},
        )
        return claims
