"""Serving: fast start, clean stop even mid-request, many runs per process, thread safety."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from hailuo_mcp.emulator import Emulator, EmulatorConfig, Fault, running_emulator

REQUEST: dict[str, Any] = {
    "model": "hailuo",
    "task_type": "video_generation",
    "input": {"prompt": "autumn wind"},
}


def test_an_emulator_starts_in_well_under_half_a_second_and_answers() -> None:
    started = time.perf_counter()
    with running_emulator(EmulatorConfig()) as emu:
        elapsed = time.perf_counter() - started
        response = httpx.get(f"{emu.url}/account/info", headers={"x-api-key": "k"}, verify=False)
    assert elapsed < 0.5
    assert response.status_code == 200
    assert emu.url.startswith("http://127.0.0.1:")
    assert emu.upload_url == f"{emu.url}/api/ephemeral_resource"


def test_many_emulators_run_one_after_another_in_one_process() -> None:
    started = time.perf_counter()
    for _ in range(20):
        with running_emulator(EmulatorConfig()) as emu:
            assert emu.creates() == 0
    assert time.perf_counter() - started < 5


def in_thread(call: Any) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``call`` in a thread; exceptions it raises land in the returned list."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_stopping_cuts_a_hung_request_instead_of_waiting_for_it() -> None:
    emu = Emulator(EmulatorConfig()).start()
    emu.add_fault(Fault("create", "hang"))
    with httpx.Client(headers={"x-api-key": "k"}, timeout=30, verify=False) as client:
        thread, errors = in_thread(lambda: client.post(f"{emu.url}/api/v1/task", json=REQUEST))
        emu.wait_until(lambda: emu.creates() == 1)
        started = time.perf_counter()
        emu.stop()
        stopped = time.perf_counter() - started
        thread.join(5)
    assert stopped < 1.0
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], httpx.TransportError)


def test_stopping_cuts_a_download_nobody_reads() -> None:
    config = EmulatorConfig(speed=1e-6, fixed_durations=(0, 1), output_size=500 * 1024 * 1024)
    emu = Emulator(config).start()
    with httpx.Client(headers={"x-api-key": "k"}, timeout=30, verify=False) as client:
        task_id = client.post(f"{emu.url}/api/v1/task", json=REQUEST).json()["data"]["task_id"]
        emu.advance(5)
        with client.stream("GET", emu.task(task_id)["output"]["video"]) as response:
            chunks = response.iter_bytes()
            next(chunks)  # then stop reading: the server's writes back up
            started = time.perf_counter()
            emu.stop()
            assert time.perf_counter() - started < 1.0
            with pytest.raises(httpx.TransportError):
                for _ in chunks:
                    pass


def test_control_calls_from_the_test_thread_are_safe_while_requests_run() -> None:
    config = EmulatorConfig(speed=1e-6, fixed_durations=(1, 10))
    with running_emulator(config) as emu:
        created: list[str] = []

        def hammer() -> None:
            with httpx.Client(headers={"x-api-key": "k"}, verify=False) as client:
                for _ in range(25):
                    answer = client.post(f"{emu.url}/api/v1/task", json=REQUEST).json()
                    created.append(answer["data"]["task_id"])
                    client.get(f"{emu.url}/api/v1/task/{created[-1]}")

        workers = [in_thread(hammer) for _ in range(4)]
        for _ in range(50):
            emu.advance(0.5)
            emu.account()
            emu.log  # noqa: B018 - reading the log while it grows
        for thread, errors in workers:
            thread.join(10)
            assert errors == []
        assert emu.creates() == emu.creates_recorded() == 100
        assert emu.gets() == 100
        assert sorted(emu.task_ids()) == sorted(created)
        emu.advance(100)
        spent = emu.account()["credit_pack_info"]["used_credits"]
        assert spent == 100 * 2_300_000


def test_serve_runs_in_the_foreground_until_interrupted() -> None:
    script = (
        "import logging\n"
        "from hailuo_mcp.emulator import EmulatorConfig, serve\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "serve('127.0.0.1', 0, EmulatorConfig(api_key='cli-key'))\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        url = read_url(process, timeout=10)
        response = httpx.get(f"{url}/account/info", headers={"x-api-key": "cli-key"}, verify=False)
        assert response.status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def read_url(process: subprocess.Popen[str], timeout: float) -> str:
    """The base URL from the child's "listening on" log line."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            line = process.stderr.readline()
            if not line:
                break
            if "listening on " in line:
                return line.split("listening on ")[1].split()[0]
    raise AssertionError("the emulator never said where it listens")
