"""/healthz and /readyz: open to anyone (load balancers send no token), telling no configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp

from hailuo_mcp.config import Settings
from hailuo_mcp.http_app import build_http_app
from hailuo_mcp.ledger import SqliteLedger
from hailuo_mcp.server import build_server

TOKEN = "hm-health-token-7c1e3a5b9d2f4e6a"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(
        {
            "HAILUO_DEMO": "1",
            "HAILUO_STATE_DIR": str(tmp_path / "state"),
            "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
            "HAILUO_IMAGE_DIRS": str(tmp_path),
            "HAILUO_HTTP_TOKEN": TOKEN,
            **env,
        }
    )


@pytest.fixture
def serve_hailuo(tmp_path: Path, serve_app: Callable[[ASGIApp], str]) -> Callable[..., str]:
    def serve(**env: str) -> str:
        settings = settings_for(tmp_path, **env)
        return serve_app(build_http_app(build_server(settings), settings, "127.0.0.1", 0))

    return serve


def get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=10, trust_env=False)


def test_healthz_answers_ok_without_a_token_while_mcp_still_needs_one(
    serve_hailuo: Callable[..., str],
) -> None:
    url = serve_hailuo()
    answer = get(f"{url}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}
    assert answer.headers["cache-control"] == "no-store"
    assert get(f"{url}/mcp").status_code == 401


def test_health_checks_answer_any_host_a_load_balancer_sends(
    serve_hailuo: Callable[..., str],
) -> None:
    url = serve_hailuo()
    assert get(f"{url}/healthz", host="10.1.2.3:8765").status_code == 200


@pytest.mark.skipif(not hasattr(SqliteLedger, "ping"), reason="SqliteLedger.ping not landed yet")
def test_readyz_answers_ok_once_the_ledger_answers(serve_hailuo: Callable[..., str]) -> None:
    answer = get(f"{serve_hailuo()}/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_readyz_is_503_with_a_short_reason_when_the_ledger_cannot_open(
    tmp_path: Path, serve_hailuo: Callable[..., str]
) -> None:
    # A file where the state folder should be: the ledger cannot be created.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    url = serve_hailuo(HAILUO_STATE_DIR=str(blocker))
    answer = get(f"{url}/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "reason": "resources not open"}
    # Liveness is not readiness: the process is alive, a restart would not fix the folder.
    assert get(f"{url}/healthz").status_code == 200


@pytest.mark.anyio
async def test_readyz_is_503_before_the_lifespan_has_opened_the_runtime(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    app = build_http_app(build_server(settings), settings, "127.0.0.1", 0)
    # The ASGI transport runs no lifespan: the app as it is before start-up has finished.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": "not started"}
    assert alive.status_code == 200
