"""OAuth 2.1 resource-server mode: JWTs of a test issuer, checked by the real app over real HTTP.

The issuer is made here: an RSA key (cryptography), its metadata and JWKS served on loopback
(the shared ``serve_app`` fixture), tokens signed with PyJWT. The hailuo-mcp app runs in uvicorn
on another loopback port and is called with httpx and with the MCP Python SDK client.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from mcp.server.auth.middleware.auth_context import get_access_token
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import ConfigurationError
from hailuo_mcp.http_app import build_http_app, transport_security
from hailuo_mcp.server import build_server
from tests.server.test_http_security import free_port, serve_command, serve_env
from tests.servers import mcp_over_http

RESOURCE = "https://mcp.example.com/mcp"
METADATA_URL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
SCOPE = "videos:generate"
STATIC = "hm-static-token-5d1e9b3a7c2f4e6a"
OTHER_STATIC = "hm-static-token-9a8b7c6d5e4f3a2b"
ACCEPT = "application/json, text/event-stream"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "oauth-test", "version": "1"},
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Issuer:
    """A tiny authorization server: metadata (RFC 8414) and a JWKS whose keys a test swaps."""

    url: str = ""
    keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    jwks_hits: int = 0

    def app(self) -> Starlette:
        async def metadata(request: Request) -> Response:
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks.json"})

        async def jwks(request: Request) -> Response:
            self.jwks_hits += 1
            return JSONResponse({"keys": [self.public_jwk(kid) for kid in self.keys]})

        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", metadata),
                Route("/jwks.json", jwks),
            ]
        )

    def public_jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}

    def token(self, kid: str = "k1", *, alg: str | None = None, **claims: Any) -> str:
        """A token signed with key `kid`; `claims` replace the defaults (None drops one)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.url,
            "aud": RESOURCE,
            "sub": "user-42",
            "client_id": "client-7",
            "scope": f"openid {SCOPE}",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        key = self.keys[kid]
        default = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(body, key, algorithm=alg or default, headers={"kid": kid})


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def issuer(serve_app: Callable[[ASGIApp], str]) -> Issuer:
    issuer = Issuer(keys={"k1": rsa_key()})
    issuer.url = serve_app(issuer.app())
    return issuer


def whoami() -> dict[str, Any]:
    """What the SDK's auth context says about the caller of this tool call."""
    token = get_access_token()
    if token is None:
        return {"client_id": None}
    return {
        "client_id": token.client_id,
        "subject": token.subject,
        "iss": (token.claims or {}).get("iss"),
        "scopes": token.scopes,
    }


@pytest.fixture
def serve_hailuo(
    tmp_path: Path, serve_app: Callable[[ASGIApp], str], issuer: Issuer
) -> Callable[..., str]:
    """Serve the real app in OAuth mode for `issuer` (env values override); returns its URL."""

    def serve(**env: str) -> str:
        settings = Settings.from_env(
            {
                "HAILUO_DEMO": "1",
                "HAILUO_STATE_DIR": str(tmp_path / "state"),
                "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
                "HAILUO_IMAGE_DIRS": str(tmp_path),
                "HAILUO_OAUTH_ISSUER": issuer.url,
                "HAILUO_RESOURCE_URL": RESOURCE,
                "HAILUO_OAUTH_SCOPES": SCOPE,
                **env,
            }
        )
        server = build_server(settings)
        # A probe of the caller, registered like any tool of the real server.
        server.tool(name="whoami")(_whoami_tool)
        return serve_app(build_http_app(server, settings, "127.0.0.1", 0))

    return serve


async def _whoami_tool() -> dict[str, Any]:
    return whoami()


def post(url: str, token: str | None = None) -> httpx.Response:
    headers = {"accept": ACCEPT}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(f"{url}/mcp", json=INITIALIZE, headers=headers, timeout=10, trust_env=False)


async def call_whoami(url: str, token: str, mode: str) -> dict[str, Any]:
    """Call the probe tool through the MCP Python SDK client over HTTP."""
    with anyio.fail_after(15):
        async with mcp_over_http(url, token=token, mode=mode, read_s=30) as c:
            result = await c.call_tool("whoami", {})
            estimate = await c.call_tool("estimate_cost", {"model": "v2.3"})
    assert not result.is_error and not estimate.is_error
    assert result.structured_content is not None
    return dict(result.structured_content)


def test_a_request_without_a_token_gets_401_naming_the_resource_metadata(
    serve_hailuo: Callable[..., str],
) -> None:
    answer = post(serve_hailuo())
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{METADATA_URL}"' in challenge
    assert "error=" not in challenge  # RFC 6750 3.1: no error code without credentials


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.anyio
async def test_a_good_jwt_gives_a_working_tool_call_that_knows_its_caller(
    serve_hailuo: Callable[..., str], issuer: Issuer, mode: str
) -> None:
    url = serve_hailuo()
    caller = await call_whoami(url, issuer.token(), mode)
    assert caller == {
        "client_id": "client-7",
        "subject": "user-42",
        "iss": issuer.url,
        "scopes": ["openid", SCOPE],
    }


@pytest.mark.anyio
async def test_azp_names_the_client_and_scp_lists_the_scopes(
    serve_hailuo: Callable[..., str], issuer: Issuer
) -> None:
    url = serve_hailuo()
    token = issuer.token(client_id=None, azp="spa-client", scope=None, scp=[SCOPE])
    caller = await call_whoami(url, token, "legacy")
    assert caller["client_id"] == "spa-client"
    assert caller["scopes"] == [SCOPE]


@pytest.mark.anyio
async def test_an_es256_key_of_the_jwks_is_accepted(
    serve_hailuo: Callable[..., str], issuer: Issuer
) -> None:
    issuer.keys["ec1"] = ec.generate_private_key(ec.SECP256R1())
    url = serve_hailuo()
    assert post(url, issuer.token("ec1")).status_code == 200


def forged_none(issuer: Issuer) -> str:
    header = jwt.utils.base64url_encode(b'{"alg":"none","kid":"k1","typ":"JWT"}').decode()
    good = issuer.token()
    return f"{header}.{good.split('.')[1]}."


def forged_hs256(issuer: Issuer) -> str:
    # Algorithm confusion: an HMAC token must never be checked, whatever its secret.
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": RESOURCE, "sub": "x", "scope": SCOPE, "exp": now + 60}
    return jwt.encode(
        claims, "k1-public-key-bytes-as-a-shared-secret", algorithm="HS256", headers={"kid": "k1"}
    )


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda i: "not-a-jwt", id="garbage"),
        pytest.param(lambda i: i.token(exp=int(time.time()) - 120), id="expired"),
        pytest.param(lambda i: i.token(nbf=int(time.time()) + 600), id="not-yet-valid"),
        pytest.param(lambda i: i.token(exp=None), id="no-exp"),
        pytest.param(lambda i: i.token(aud="https://other.example.com/mcp"), id="wrong-audience"),
        pytest.param(lambda i: i.token(aud=None), id="no-audience"),
        pytest.param(lambda i: i.token(iss="https://evil.example.com"), id="wrong-issuer"),
        pytest.param(forged_none, id="alg-none"),
        pytest.param(forged_hs256, id="alg-hs256"),
        pytest.param(lambda i: i.token()[:-4] + "AAAA", id="bad-signature"),
    ],
)
def test_a_token_that_is_not_valid_for_this_resource_gets_401(
    serve_hailuo: Callable[..., str], issuer: Issuer, make: Callable[[Issuer], str]
) -> None:
    token = make(issuer)
    answer = post(serve_hailuo(), token)
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert f'resource_metadata="{METADATA_URL}"' in answer.headers["www-authenticate"]
    assert token not in answer.text


def test_a_valid_token_without_the_required_scope_gets_403_insufficient_scope(
    serve_hailuo: Callable[..., str], issuer: Issuer
) -> None:
    answer = post(serve_hailuo(), issuer.token(scope="openid"))
    assert answer.status_code == 403
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and f'scope="{SCOPE}"' in challenge
    assert answer.json()["error"] == "insufficient_scope"


def test_a_token_of_a_rotated_key_makes_one_refetch_and_is_accepted(
    serve_hailuo: Callable[..., str], issuer: Issuer
) -> None:
    url = serve_hailuo()
    assert post(url, issuer.token("k1")).status_code == 200
    assert issuer.jwks_hits == 1
    # The issuer rotates: k2 replaces k1.
    issuer.keys = {"k2": rsa_key()}
    assert post(url, issuer.token("k2")).status_code == 200
    assert issuer.jwks_hits == 2
    assert post(url, issuer.token("k2")).status_code == 200
    assert issuer.jwks_hits == 2  # cached again


def test_made_up_kids_refetch_the_keys_at_most_once(
    serve_hailuo: Callable[..., str], issuer: Issuer
) -> None:
    url = serve_hailuo()
    assert post(url, issuer.token("k1")).status_code == 200
    stranger = Issuer(url=issuer.url, keys={"nope": rsa_key()})
    for _ in range(3):
        assert post(url, stranger.token("nope")).status_code == 401
    assert issuer.jwks_hits == 2


def test_an_explicit_jwks_url_is_used_without_discovery(
    serve_hailuo: Callable[..., str], issuer: Issuer
) -> None:
    url = serve_hailuo(HAILUO_OAUTH_JWKS_URL=f"{issuer.url}/jwks.json")
    assert post(url, issuer.token()).status_code == 200


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.anyio
async def test_static_tokens_keep_working_beside_oauth_each_its_own_caller(
    serve_hailuo: Callable[..., str], issuer: Issuer, mode: str
) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=f"{STATIC},{OTHER_STATIC}")
    for token in (STATIC, OTHER_STATIC):
        caller = await call_whoami(url, token, mode)
        digest = hashlib.sha256(token.encode()).hexdigest()[:12]
        assert caller == {
            "client_id": f"token:{digest}",
            "subject": None,
            "iss": None,
            "scopes": [SCOPE],
        }
    assert post(url, issuer.token()).status_code == 200
    assert post(url, "hm-static-token-wrong").status_code == 401


@pytest.mark.parametrize(
    "path",
    ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"],
)
def test_the_protected_resource_metadata_is_served_without_a_token(
    serve_hailuo: Callable[..., str], issuer: Issuer, path: str
) -> None:
    url = serve_hailuo()
    answer = httpx.get(f"{url}{path}", trust_env=False, timeout=10)
    assert answer.status_code == 200
    document = answer.json()
    assert document["resource"] == RESOURCE
    assert [s.rstrip("/") for s in document["authorization_servers"]] == [issuer.url]
    assert document["scopes_supported"] == [SCOPE]
    assert document["bearer_methods_supported"] == ["header"]


def test_other_paths_still_need_a_token(serve_hailuo: Callable[..., str]) -> None:
    url = serve_hailuo()
    assert httpx.get(f"{url}/", trust_env=False).status_code == 401
    assert httpx.get(f"{url}/.well-known/other", trust_env=False).status_code == 401


def test_host_and_origin_are_still_checked_for_a_good_jwt(
    serve_hailuo: Callable[..., str], issuer: Issuer
) -> None:
    url = serve_hailuo()
    headers = {"accept": ACCEPT, "authorization": f"Bearer {issuer.token()}"}
    foreign_host = httpx.post(
        f"{url}/mcp", json=INITIALIZE, headers={**headers, "host": "evil.example"}, trust_env=False
    )
    assert foreign_host.status_code == 421
    foreign_origin = httpx.post(
        f"{url}/mcp",
        json=INITIALIZE,
        headers={**headers, "origin": "http://evil.example"},
        trust_env=False,
    )
    assert foreign_origin.status_code == 403


# Configuration.


def settings_with(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"HAILUO_STATE_DIR": str(tmp_path), "HAILUO_OUTPUT_DIR": str(tmp_path), **env}
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"HAILUO_OAUTH_ISSUER": "http://auth.example.com"}, "HAILUO_OAUTH_ISSUER"),
        ({"HAILUO_OAUTH_ISSUER": "ftp://auth.example.com"}, "HAILUO_OAUTH_ISSUER"),
        ({"HAILUO_OAUTH_ISSUER": "https://auth.example.com"}, "HAILUO_RESOURCE_URL"),
        ({"HAILUO_OAUTH_JWKS_URL": "http://keys.example.com/jwks"}, "HAILUO_OAUTH_JWKS_URL"),
        ({"HAILUO_RESOURCE_URL": "mcp.example.com/mcp"}, "HAILUO_RESOURCE_URL"),
        ({"HAILUO_HTTP_STATELESS": "maybe"}, "HAILUO_HTTP_STATELESS"),
    ],
)
def test_a_bad_oauth_setting_is_a_problem_that_stops_the_http_server(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    if "HAILUO_OAUTH_ISSUER" not in env and variable != "HAILUO_HTTP_STATELESS":
        env = {**env, "HAILUO_OAUTH_ISSUER": "https://auth.example.com"}
    if variable == "HAILUO_OAUTH_ISSUER":
        env = {**env, "HAILUO_RESOURCE_URL": RESOURCE}
    settings = settings_with(tmp_path, **env)
    assert variable in {problem.variable for problem in settings.problems}
    with pytest.raises(ConfigurationError, match=variable):
        build_http_app(build_server(settings), settings, "127.0.0.1", 0)


def test_oauth_settings_read_loopback_http_and_scopes_separated_by_commas_or_spaces(
    tmp_path: Path,
) -> None:
    settings = settings_with(
        tmp_path,
        HAILUO_OAUTH_ISSUER="http://127.0.0.1:9000/realms/x",
        HAILUO_RESOURCE_URL=RESOURCE,
        HAILUO_OAUTH_SCOPES="videos:generate, videos:read  videos:generate",
    )
    assert settings.problems == ()
    assert settings.oauth_enabled
    assert settings.oauth_scopes == ("videos:generate", "videos:read")


def test_oauth_alone_allows_a_bind_beyond_loopback(tmp_path: Path) -> None:
    oauth = settings_with(
        tmp_path, HAILUO_OAUTH_ISSUER="https://auth.example.com", HAILUO_RESOURCE_URL=RESOURCE
    )
    transport_security(oauth, "0.0.0.0", 8765)
    with pytest.raises(ConfigurationError, match="HAILUO_OAUTH_ISSUER"):
        transport_security(settings_with(tmp_path), "0.0.0.0", 8765)


# The command line, as a user starts it.


def test_an_issuer_without_a_resource_url_stops_the_http_server_with_exit_2(
    tmp_path: Path,
) -> None:
    env = serve_env(tmp_path, HAILUO_OAUTH_ISSUER="https://auth.example.com")
    done = subprocess.run(
        serve_command("127.0.0.1", free_port()), env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 2, done.stderr.decode()
    assert "HAILUO_RESOURCE_URL" in done.stderr.decode()


def test_serving_all_interfaces_with_oauth_alone_works(tmp_path: Path, issuer: Issuer) -> None:
    port = free_port()
    env = serve_env(tmp_path, HAILUO_OAUTH_ISSUER=issuer.url, HAILUO_RESOURCE_URL=RESOURCE)
    process = subprocess.Popen(
        serve_command("0.0.0.0", port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        first = None
        while first is None and time.monotonic() < deadline and process.poll() is None:
            try:
                first = post(url)
            except httpx.TransportError:
                time.sleep(0.05)  # not listening yet
        assert first is not None and first.status_code == 401
        assert post(url, issuer.token()).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
