"""An emulator in its own process, so its CPU and memory never count against the measured side."""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from hailuo_mcp.emulator import EmulatorConfig, serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(port: int, config: EmulatorConfig) -> None:
    import logging

    logging.disable(logging.WARNING)
    serve("127.0.0.1", port, config)


@contextmanager
def emulator_process(config: EmulatorConfig) -> Iterator[tuple[str, int]]:
    """Serve an emulator in a child process; yield its base URL and process id."""
    port = _free_port()
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_run, args=(port, config), daemon=True)
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/api/v1/task/none", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or not process.is_alive():
                    raise RuntimeError("the emulator process did not start") from None
                time.sleep(0.05)
        assert process.pid is not None
        yield url, process.pid
    finally:
        process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
