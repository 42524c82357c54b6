"""Shared fixtures: one emulator family with an explicit clock, its HTTP clients, loopback servers.

Every emulator a test uses is started by ``make_emulator`` on a random loopback port and
stopped when the test ends. Its clock is always a stated choice:

* ``clock=MANUAL``: frozen (speed 1e-6): time moves only through ``emulator.advance``;
* ``clock=<factor>``: emulated seconds per real second (100 makes a 77 s task take 0.77 s).

Every other keyword is an ``EmulatorConfig`` field, changed from ``BASE_CONFIG`` (the test
key, every task queueing 1 s and generating 76 s, the example task on PiAPI's Hailuo page;
``fixed_durations=None`` samples the timing model instead)::

    def test_x(make_emulator: MakeEmulator) -> None:
        emulator = make_emulator(clock=20, fixed_durations=(1.0, 99.0))

Two thin fixtures cover the common cases, and read their options from an ``emulator``
mark on the test or its module (the closest wins whole: a test's mark replaces its module's)::

    pytestmark = pytest.mark.emulator(clock=100, seed=21, fixed_durations=None)

* ``emulator``: ``make_emulator(clock=MANUAL, **mark)``, or the clock the mark names;
* ``fast_emulator``: the mark's options at ``clock=FAST`` always.

``emulator_client`` and ``fast_emulator_client`` are ``httpx.Client``s for them, sending the
key; ``serve_app`` serves any ASGI app on loopback (webhook receivers, image hosts). ``KEY``,
``MANUAL``, ``FAST``, ``MakeEmulator`` and ``client_for`` are in tests/support.py, for
test modules to import.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from hailuo_mcp.emulator import Emulator, running_emulator
from tests.servers import serving
from tests.support import FAST, MANUAL, Clock, MakeEmulator, client_for, config_for


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "emulator(clock=..., **config): options of the emulator and fast_emulator fixtures",
    )


@pytest.fixture(scope="session")
def tls_context() -> ssl.SSLContext:
    """One TLS context for every test client: building one per client costs ~30 ms."""
    return ssl.create_default_context()


@pytest.fixture
def make_emulator() -> Iterator[MakeEmulator]:
    """The one way tests start emulators: ``make_emulator(clock=..., **config_changes)``."""
    with ExitStack() as running:

        def make(*, clock: Clock, **overrides: Any) -> Emulator:
            return running.enter_context(running_emulator(config_for(clock, **overrides)))

        yield make


def _marked(request: pytest.FixtureRequest) -> dict[str, Any]:
    mark = request.node.get_closest_marker("emulator")
    if mark is None:
        return {}
    if mark.args:
        raise TypeError("pytest.mark.emulator takes keyword arguments only")
    return dict(mark.kwargs)


@pytest.fixture
def emulator(make_emulator: MakeEmulator, request: pytest.FixtureRequest) -> Emulator:
    """A PiAPI emulator, its clock frozen unless the ``emulator`` mark names one."""
    return make_emulator(**{"clock": MANUAL, **_marked(request)})


@pytest.fixture
def fast_emulator(make_emulator: MakeEmulator, request: pytest.FixtureRequest) -> Emulator:
    """A PiAPI emulator at 100 times real time, with the ``emulator`` mark's other options."""
    return make_emulator(**{**_marked(request), "clock": FAST})


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
