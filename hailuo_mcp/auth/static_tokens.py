"""HAILUO_HTTP_TOKEN: shared secrets compared as digests, each one its own caller."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

from mcp.server.auth.provider import AccessToken
from pydantic import SecretStr


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def token_client_id(token: str) -> str:
    """A static token's caller name: `token:` and 12 hex digits of its SHA-256 (not the token)."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


class StaticTokenVerifier:
    """A TokenVerifier accepting any one of a fixed set of tokens."""

    def __init__(self, tokens: Iterable[SecretStr], scopes: Sequence[str] = ()) -> None:
        # Digests have one length, so comparing them reveals nothing about a token's length.
        self._digests = [_digest(t.get_secret_value().encode()) for t in tokens]
        # An operator's token may do everything: it carries whatever scopes are required.
        self._scopes = list(scopes)

    def __bool__(self) -> bool:
        return bool(self._digests)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's AccessToken if it is one of ours, else None."""
        digest = _digest(token.encode())
        matched = False
        for expected in self._digests:
            # `|=`, not any(): compare against every token so timing never says which matched.
            matched |= hmac.compare_digest(digest, expected)
        if not matched:
            return None
        return AccessToken(token=token, client_id=token_client_id(token), scopes=self._scopes)
