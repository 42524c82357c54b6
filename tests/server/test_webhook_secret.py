"""The webhook secret: one per state folder, never read half-written; shared by configuration.

An empty secret would accept deliveries that carry none, so the file must appear whole.
"""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from hailuo_mcp.config import Settings
from hailuo_mcp.runtime import open_runtime
from hailuo_mcp.webhooks import load_or_create_secret


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_servers_starting_at_once_on_one_state_folder_all_get_the_same_whole_secret(
    tmp_path: Path,
) -> None:
    for attempt in range(5):
        folder = tmp_path / f"state-{attempt}"
        got: list[str] = []
        start = threading.Barrier(16)

        def one_server(
            folder: Path = folder, got: list[str] = got, start: threading.Barrier = start
        ) -> None:
            start.wait()
            got.append(load_or_create_secret(folder).get_secret_value())

        threads = [threading.Thread(target=one_server) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert len(got) == 16 and len(set(got)) == 1 and len(got[0]) >= 32
        # Nothing is left aside: one file, readable by this user only.
        (path,) = list(folder.iterdir())
        assert path.name == "webhook-secret"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_secret_file_is_replaced_by_a_real_secret(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path)
    (path,) = list(tmp_path.iterdir())
    path.write_text("")
    again = load_or_create_secret(tmp_path)
    assert again.get_secret_value() and again != secret
    assert load_or_create_secret(tmp_path) == again


@pytest.mark.anyio
async def test_a_configured_secret_is_the_one_every_replica_uses(tmp_path: Path) -> None:
    served = []
    for replica in ("a", "b"):
        settings = Settings.from_env(
            {
                "PIAPI_API_KEY": "k",
                "HAILUO_PUBLIC_URL": "https://mcp.example.com",
                "PIAPI_WEBHOOK_SECRET": "shared-secret-of-the-deployment-0123",
                "HAILUO_STATE_DIR": str(tmp_path / replica),
                "HAILUO_OUTPUT_DIR": str(tmp_path / "videos"),
                "HAILUO_RESUME": "0",
            }
        )
        async with open_runtime(settings, listen_for_webhooks=False) as runtime:
            assert runtime.served is not None and runtime.served.webhook_secret is not None
            served.append(runtime.served.webhook_secret.get_secret_value())
    assert served == ["shared-secret-of-the-deployment-0123"] * 2
    # Nothing was made in the state folders: the configured secret is the only one.
    assert not any(p.name.startswith("webhook") for p in tmp_path.rglob("*"))
