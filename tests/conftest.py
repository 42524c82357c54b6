"""Shared fixtures.

Emulator fixtures: ``emulator_config`` (override it in a module for other settings),
``emulator`` (a running ``Emulator``), ``emulator_client`` (an ``httpx.Client`` with the
key) and ``serve_app`` (serve any ASGI app on loopback: webhook receivers, image hosts).
The default clock is frozen (speed 1e-6): time moves only through ``emulator.advance``, and
every task queues 1 s and generates 76 s, like the seed's task.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

import httpx
import pytest
from starlette.types import ASGIApp

from hailuo_mcp.emulator import Emulator, EmulatorConfig, running_emulator
from hailuo_mcp.emulator.runner import ServerThread, bind_socket

EMULATOR_KEY = "test-key"


@pytest.fixture(scope="session")
def tls_context() -> ssl.SSLContext:
    """One TLS context for every test client: building one per client costs ~30 ms."""
    return ssl.create_default_context()


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Settings of the ``emulator`` fixture."""
    return EmulatorConfig(api_key=EMULATOR_KEY, speed=1e-6, fixed_durations=(1.0, 76.0), seed=7)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    """A PiAPI emulator on a random loopback port."""
    with running_emulator(emulator_config) as emu:
        yield emu


@pytest.fixture
def emulator_client(emulator: Emulator, tls_context: ssl.SSLContext) -> Iterator[httpx.Client]:
    """A plain HTTP client for the emulator, sending the expected ``x-api-key``."""
    with httpx.Client(
        base_url=emulator.url,
        headers={"x-api-key": EMULATOR_KEY},
        timeout=5.0,
        trust_env=False,
        verify=tls_context,
    ) as client:
        yield client


@pytest.fixture
def serve_app() -> Iterator[Callable[[ASGIApp], str]]:
    """Serve ASGI apps on random loopback ports until the test ends; returns each base URL."""
    servers: list[ServerThread] = []

    def serve(app: ASGIApp) -> str:
        sock = bind_socket("127.0.0.1", 0)
        server = ServerThread(app, sock, lambda: None)
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield serve
    for server in servers:
        server.stop()
