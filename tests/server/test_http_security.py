"""Streamable HTTP is never open: tokens, Host/Origin checks and the refused public bind.

The app runs in uvicorn on a loopback port (the shared ``serve_app`` fixture) and is called over
real HTTP; the bind rules run ``hailuo-mcp serve`` as a subprocess, as a user starts it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.types import ASGIApp

from hailuo_mcp.config import Settings
from hailuo_mcp.errors import ConfigurationError
from hailuo_mcp.http_app import build_http_app, is_loopback, transport_security
from hailuo_mcp.server import build_server
from tests.servers import mcp_over_http

TOKEN = "hm-test-token-3f9a1c7e5b2d4a6f"
OTHER_TOKEN = "hm-second-token-8e0c2b4d6f1a3c5e"
WRONG_TOKEN = "hm-wrong-token-0000000000000000"
ACCEPT = "application/json, text/event-stream"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "http-security-test", "version": "1"},
    },
}
# Both request paths of the SDK: the handshake era, and 2026-07-28 (no session, own checks).
ERAS = [{}, {"mcp-protocol-version": "2026-07-28"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def serve_hailuo(tmp_path: Path, serve_app: Callable[[ASGIApp], str]) -> Callable[..., str]:
    """Serve the real hailuo-mcp HTTP app on loopback with these env values; returns its URL."""

    def serve(**env: str) -> str:
        settings = Settings.from_env(
            {
                "HAILUO_DEMO": "1",
                "HAILUO_STATE_DIR": str(tmp_path / "state"),
                "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
                "HAILUO_IMAGE_DIRS": str(tmp_path),
                **env,
            }
        )
        # Port 0: the real port is only known once bound; loopback Hosts match any port.
        return serve_app(build_http_app(build_server(settings), settings, "127.0.0.1", 0))

    return serve


def post(url: str, *, token: str | None = None, **headers: str) -> httpx.Response:
    """One raw JSON-RPC initialize POST to `url`/mcp."""
    sent = {"accept": ACCEPT, **{k.replace("_", "-"): v for k, v in headers.items()}}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return httpx.post(f"{url}/mcp", json=INITIALIZE, headers=sent, timeout=10, trust_env=False)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_a_request_without_a_token_is_refused_with_401_and_a_bearer_challenge(
    serve_hailuo: Callable[..., str],
) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=TOKEN)
    answer = post(url)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {WRONG_TOKEN}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        f"{TOKEN}",
        "Bearer",
    ],
    ids=["wrong", "prefix", "longer", "basic-scheme", "no-scheme", "empty"],
)
def test_anything_but_an_exact_bearer_token_is_refused_with_401(
    serve_hailuo: Callable[..., str], authorization: str
) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=TOKEN)
    answer = post(url, authorization=authorization)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in answer.text


def test_every_path_needs_the_token_not_only_the_mcp_endpoint(
    serve_hailuo: Callable[..., str],
) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=TOKEN)
    assert httpx.get(f"{url}/", trust_env=False).status_code == 401
    assert httpx.delete(f"{url}/mcp", trust_env=False).status_code == 401


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_valid_token_gives_a_working_mcp_session_on_both_protocol_eras(
    serve_hailuo: Callable[..., str], mode: str
) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=TOKEN)
    with anyio.fail_after(15):
        async with mcp_over_http(url, token=TOKEN, mode=mode) as c:
            tools = await c.list_tools()
    assert "generate_video" in {tool.name for tool in tools.tools}


def test_any_one_of_several_comma_separated_tokens_is_accepted(
    serve_hailuo: Callable[..., str],
) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=f"{TOKEN}, {OTHER_TOKEN}")
    assert post(url, token=TOKEN).status_code == 200
    assert post(url, token=OTHER_TOKEN).status_code == 200
    assert post(url, token=WRONG_TOKEN).status_code == 401


@pytest.mark.parametrize("era", ERAS, ids=["handshake", "2026-07-28"])
def test_a_foreign_host_is_refused_with_421_even_with_the_right_token(
    serve_hailuo: Callable[..., str], era: dict[str, str]
) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=TOKEN)
    answer = post(url, token=TOKEN, host="evil.example", **era)
    assert answer.status_code == 421


@pytest.mark.parametrize("era", ERAS, ids=["handshake", "2026-07-28"])
def test_a_foreign_origin_is_refused_with_403_even_with_the_right_token(
    serve_hailuo: Callable[..., str], era: dict[str, str]
) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=TOKEN)
    answer = post(url, token=TOKEN, origin="http://evil.example", **era)
    assert answer.status_code == 403


@pytest.mark.parametrize("origin", ["http://localhost:{port}", "http://127.0.0.1:{port}"])
def test_a_loopback_origin_is_accepted(serve_hailuo: Callable[..., str], origin: str) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=TOKEN)
    answer = post(url, token=TOKEN, origin=origin.format(port=port_of(url)))
    assert answer.status_code == 200
    assert '"name":"hailuo-mcp","title":"Hailuo video (PiAPI)"' in answer.text


def test_allowed_hosts_lets_the_public_name_in_and_no_other(
    serve_hailuo: Callable[..., str],
) -> None:
    url = serve_hailuo(HAILUO_HTTP_TOKEN=TOKEN, HAILUO_ALLOWED_HOSTS="mcp.example.com")
    assert post(url, token=TOKEN, host="mcp.example.com").status_code == 200
    assert post(url, token=TOKEN, host="mcp.example.com:8443").status_code == 200
    assert (
        post(url, token=TOKEN, host="mcp.example.com", origin="https://mcp.example.com").status_code
        == 200
    )
    assert post(url, token=TOKEN, host="other.example.com").status_code == 421
    assert post(url, token=TOKEN, origin="https://other.example.com").status_code == 403


def test_without_a_token_loopback_serves_without_auth_and_still_checks_host_and_origin(
    serve_hailuo: Callable[..., str],
) -> None:
    url = serve_hailuo()
    answer = post(url)
    assert answer.status_code == 200
    assert '"name":"hailuo-mcp","title":"Hailuo video (PiAPI)"' in answer.text
    assert post(url, host="evil.example").status_code == 421
    assert post(url, origin="http://evil.example").status_code == 403


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("mcp.example.com", False),
    ],
)
def test_only_loopback_binds_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("entry", "accepted", "refused"),
    [
        ("mcp.example.com", ["mcp.example.com", "mcp.example.com:8443"], ["example.com"]),
        ("mcp.example.com:*", ["mcp.example.com", "mcp.example.com:9"], []),
        ("mcp.example.com:8443", ["mcp.example.com:8443"], ["mcp.example.com:8444"]),
        ("mcp.example.com:443", ["mcp.example.com:443", "mcp.example.com"], []),
        ("MCP.Example.com", ["mcp.example.com"], []),
        ("fe80::1", ["[fe80::1]", "[fe80::1]:8765"], []),
        ("[fe80::1]:8765", ["[fe80::1]:8765"], ["[fe80::1]:1"]),
    ],
)
def test_allowed_host_entries_accept_names_with_or_without_a_port(
    serve_hailuo: Callable[..., str], entry: str, accepted: list[str], refused: list[str]
) -> None:
    url = serve_hailuo(HAILUO_ALLOWED_HOSTS=entry)
    for host in accepted:
        assert post(url, host=host).status_code == 200, host
    for host in refused:
        assert post(url, host=host).status_code == 421, host


@pytest.mark.parametrize("entry", ["https://mcp.example.com", "*", "mcp.example.com/mcp", "a b"])
def test_an_allowed_host_that_is_not_a_host_name_is_a_configuration_error(
    tmp_path: Path, entry: str
) -> None:
    settings = Settings.from_env(
        {"HAILUO_STATE_DIR": str(tmp_path), "HAILUO_OUTPUT_DIR": str(tmp_path)}
        | {"HAILUO_ALLOWED_HOSTS": entry}
    )
    with pytest.raises(ConfigurationError, match="HAILUO_ALLOWED_HOSTS"):
        transport_security(settings, "127.0.0.1", 8765)


# The command line, as a user starts it.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HAILUO_DEMO": "1",
        "HAILUO_STATE_DIR": str(tmp_path / "state"),
        "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
        **extra,
    }


def serve_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "hailuo_mcp", "serve", "--transport", "streamable-http"] + [
        "--host",
        host,
        "--port",
        str(port),
    ]


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port already listening on every interface: whoever binds it after us fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serving_beyond_loopback_without_a_token_exits_2_before_binding(
    tmp_path: Path, listening_port: int, host: str
) -> None:
    # The port is taken: had the server tried to bind, uvicorn would report it and exit 1.
    done = subprocess.run(
        serve_command(host, listening_port),
        env=serve_env(tmp_path),
        capture_output=True,
        timeout=30,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "HAILUO_HTTP_TOKEN" in stderr and "HAILUO_ALLOWED_HOSTS" in stderr
    assert "address already in use" not in stderr.lower()
    assert done.stdout == b""


def test_serving_all_interfaces_with_a_token_works_and_never_logs_the_token(
    tmp_path: Path,
) -> None:
    port = free_port()
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    # DEBUG: the most the SDK and uvicorn ever log must still hold no credentials.
    env = serve_env(tmp_path, HAILUO_HTTP_TOKEN=TOKEN, HAILUO_LOG_LEVEL="DEBUG")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            serve_command("0.0.0.0", port), env=env, stdout=stdout, stderr=stderr
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
        assert first is not None, err.read_text()
        assert first.status_code == 401
        assert post(url, token=WRONG_TOKEN).status_code == 401
        answer = post(url, token=TOKEN)
        assert answer.status_code == 200
        assert '"name":"hailuo-mcp","title":"Hailuo video (PiAPI)"' in answer.text
        assert post(url, token=TOKEN, host="evil.example").status_code == 421
    finally:
        process.terminate()
        process.wait(timeout=10)
    logged = out.read_text() + err.read_text()
    assert "Refused POST /mcp" in logged
    assert TOKEN not in logged and WRONG_TOKEN not in logged
