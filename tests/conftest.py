"""Shared fixtures: the emulator with an explicit clock, HTTP clients for it, loopback servers.

The emulator's clock is chosen by the fixture's name:

* ``emulator``: frozen (speed 1e-6): time moves only through ``emulator.advance``;
* ``fast_emulator``: 100 times real time, so a 77 s task ends after 0.77 real seconds.

Both serve ``emulator_config``: the test key, and every task queueing 1 s and generating
76 s (the example task on PiAPI's Hailuo page). A module that needs other settings overrides
``emulator_config``, asking for this one to change only what differs::

    @pytest.fixture
    def emulator_config(emulator_config: EmulatorConfig) -> EmulatorConfig:
        return replace(emulator_config, check_images=False)

``emulator`` keeps the speed such an override names; ``fast_emulator`` always runs at 100x.
``emulator_client`` and ``fast_emulator_client`` are ``httpx.Client``s for them, sending the
key; ``serve_app`` serves any ASGI app on loopback (webhook receivers, image hosts).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace

import httpx
import pytest
from starlette.types import ASGIApp

from hailuo_mcp.emulator import Emulator, EmulatorConfig, running_emulator
from tests.servers import serving

EMULATOR_KEY = "test-key"
FROZEN = 1e-6
FAST = 100.0


@pytest.fixture(scope="session")
def tls_context() -> ssl.SSLContext:
    """One TLS context for every test client: building one per client costs ~30 ms."""
    return ssl.create_default_context()


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Settings of the emulator fixtures (override in a module for others)."""
    return EmulatorConfig(api_key=EMULATOR_KEY, speed=FROZEN, fixed_durations=(1.0, 76.0), seed=7)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    """A PiAPI emulator on a random loopback port, its clock frozen."""
    with running_emulator(emulator_config) as emu:
        yield emu


@pytest.fixture
def fast_emulator(emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    """A PiAPI emulator on a random loopback port, its clock at 100 times real time."""
    with running_emulator(replace(emulator_config, speed=FAST)) as emu:
        yield emu


def client_for(emulator: Emulator, tls_context: ssl.SSLContext) -> httpx.Client:
    """A plain HTTP client for ``emulator``, sending the expected ``x-api-key``."""
    return httpx.Client(
        base_url=emulator.url,
        headers={"x-api-key": EMULATOR_KEY},
        timeout=5.0,
        trust_env=False,
        verify=tls_context,
    )


@pytest.fixture
def emulator_client(emulator: Emulator, tls_context: ssl.SSLContext) -> Iterator[httpx.Client]:
    """An HTTP client for ``emulator``."""
    with client_for(emulator, tls_context) as client:
        yield client


@pytest.fixture
def fast_emulator_client(
    fast_emulator: Emulator, tls_context: ssl.SSLContext
) -> Iterator[httpx.Client]:
    """An HTTP client for ``fast_emulator``."""
    with client_for(fast_emulator, tls_context) as client:
        yield client


@pytest.fixture
def serve_app() -> Iterator[Callable[[ASGIApp], str]]:
    """Serve ASGI apps on random loopback ports until the test ends; returns each base URL."""
    with ExitStack() as servers:
        yield lambda app: servers.enter_context(serving(app))
