"""``Emulator``: one running emulated PiAPI and the controls tests script it with."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from hailuo_mcp.emulator.app import build_app
from hailuo_mcp.emulator.clock import EmulatedClock
from hailuo_mcp.emulator.faults import Fault
from hailuo_mcp.emulator.options import EmulatorConfig
from hailuo_mcp.emulator.runner import ServerThread, bind_socket, run_blocking
from hailuo_mcp.emulator.state import LogEntry, State, WebhookDelivery
from hailuo_mcp.emulator.tasks import FailSpec

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
POLL_S = 0.002


class Emulator:
    """An emulated PiAPI served over real HTTP on loopback, with time and fault controls.

    Every control method is safe to call from any thread while the server runs.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock = EmulatedClock(self.config.speed)
        self._state = State(self.config, self.clock)
        self._server: ServerThread | None = None

    # Lifecycle

    def start(self) -> Emulator:
        """Serve on a random loopback port in a background thread."""
        if self._server is not None:
            raise RuntimeError("this emulator is already started")
        sock = bind_socket(LOOPBACK, 0)
        self._state.base_url = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
        self._server = ServerThread(build_app(self._state), sock, self._state.stopping.set)
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung requests and open streams are cut, not waited for."""
        if self._server is not None:
            self._state.stopping.set()
            self._server.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Addresses

    @property
    def url(self) -> str:
        """PiAPI base URL, ``http://127.0.0.1:PORT``."""
        return self._state.base_url

    @property
    def upload_url(self) -> str:
        """The file upload endpoint."""
        return f"{self.url}/api/ephemeral_resource"

    # Time

    def now(self) -> float:
        """Emulated time, Unix seconds."""
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the emulated clock ``seconds`` forward."""
        self.clock.advance(seconds)

    # Faults

    def add_fault(self, fault: Fault) -> None:
        """Apply ``fault`` to the next ``fault.times`` matching requests."""
        self._state.add_fault(fault)

    def fail_next_tasks(
        self,
        n: int = 1,
        code: int = 10000,
        message: str = "task failed",
        raw_message: str = "video generation failed upstream",
    ) -> None:
        """The next ``n`` recorded tasks end ``failed`` (credits released) at generation end."""
        self._state.queue_failures(n, FailSpec(code, message, raw_message))

    def stick_next_tasks(self, n: int = 1) -> None:
        """The next ``n`` recorded tasks stay ``processing`` forever."""
        self._state.queue_stuck(n)

    # Inspection

    def task(self, task_id: str) -> dict[str, Any]:
        """The task object as ``GET /api/v1/task/{id}`` would answer it now.

        Raises:
            KeyError: no such task.
        """
        task = self._state.render(task_id)
        if task is None:
            raise KeyError(task_id)
        return task

    def wait_until(self, predicate: Callable[[], object], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` is true, polling every 2 ms.

        For events that happen off the emulated clock (the server noticing a client left,
        an image check, a webhook answer).

        Raises:
            TimeoutError: still false after ``timeout`` real seconds.
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(POLL_S)

    def wait_for_status(self, task_id: str, *statuses: str, timeout: float = 5.0) -> dict[str, Any]:
        """Block until the task's status is one of ``statuses`` (default: terminal).

        Useful where real work happens off the clock (image checks), or with a fast clock.

        Raises:
            TimeoutError: the status was not reached within ``timeout`` real seconds.
        """
        wanted = set(statuses or ("completed", "failed"))
        deadline = time.monotonic() + timeout
        while True:
            task = self.task(task_id)
            if task["status"] in wanted:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} is {task['status']}, not {sorted(wanted)}")
            time.sleep(POLL_S)

    def wait_for_deliveries(self, count: int, timeout: float = 5.0) -> list[WebhookDelivery]:
        """Block until at least ``count`` webhook attempts were made; return them all.

        Raises:
            TimeoutError: fewer attempts were made within ``timeout`` real seconds.
        """
        deadline = time.monotonic() + timeout
        while len(deliveries := self.webhook_deliveries) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(deliveries)} webhook attempts, expected {count}")
            time.sleep(POLL_S)
        return deliveries

    def task_ids(self) -> list[str]:
        """Ids of every recorded task, oldest first."""
        return self._state.task_ids()

    @property
    def log(self) -> list[LogEntry]:
        """A snapshot of the request log."""
        return self._state.log_entries()

    def creates(self) -> int:
        """``POST /api/v1/task`` requests received (rejected and faulted ones included)."""
        return self._state.creates()

    def creates_recorded(self) -> int:
        """Tasks actually recorded."""
        return self._state.creates_recorded()

    def gets(self, task_id: str | None = None) -> int:
        """``GET /api/v1/task/{id}`` requests, for one task or all."""
        return self._state.gets(task_id)

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook attempt: ``(endpoint, headers, body, status_code)``."""
        return self._state.webhook_deliveries()

    def account(self) -> dict[str, Any]:
        """``data`` of ``GET /account/info`` right now."""
        return self._state.account()

    def reset(self) -> None:
        """Clear faults, scripted task outcomes, tasks, uploads, log and deliveries."""
        self._state.reset()


@contextmanager
def running_emulator(config: EmulatorConfig | None = None) -> Iterator[Emulator]:
    """Run an emulator on a random loopback port for the duration of the block."""
    emulator = Emulator(config).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def serve(host: str = LOOPBACK, port: int = 8000, cfg: EmulatorConfig | None = None) -> None:
    """Serve the emulator in this thread until interrupted (``hailuo-mcp emulator``).

    Output and upload URLs use ``host``, or 127.0.0.1 when ``host`` is a wildcard address.
    """
    emulator = Emulator(cfg)
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    public_host = LOOPBACK if host in ("0.0.0.0", "::", "") else host
    if ":" in public_host:
        public_host = f"[{public_host}]"
    state = emulator._state
    state.base_url = f"http://{public_host}:{bound_port}"
    logger.info("PiAPI emulator listening on %s (speed x%g)", state.base_url, emulator.config.speed)
    try:
        run_blocking(build_app(state), sock, state.stopping.set)
    except KeyboardInterrupt:
        # uvicorn re-raises the SIGINT it handled once shutdown is done; Ctrl+C is the
        # normal way to stop, so end quietly.
        logger.info("PiAPI emulator stopped")
