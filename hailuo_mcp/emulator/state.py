"""Everything one emulator remembers, behind one lock.

The test thread (control methods) and the server thread (requests, ticker) both touch this
state; every public method takes ``_lock`` and never awaits while holding it.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from hailuo_mcp.emulator.clock import NS_PER_S, EmulatedClock
from hailuo_mcp.emulator.faults import Fault
from hailuo_mcp.emulator.options import EmulatorConfig
from hailuo_mcp.emulator.rules import POINTS_PER_USD, CreateRequest
from hailuo_mcp.emulator.tasks import (
    TERMINAL,
    EmulatedTask,
    FailSpec,
    RenderOptions,
    WebhookJob,
    render_task,
    seconds_to_ns,
)
from hailuo_mcp.emulator.timing import sample_durations

STICK = "stick"


class LogEntry(NamedTuple):
    """One request as the emulator saw it.

    ``status_code`` is ``None`` when no answer was completed (hang ended by the client or
    the server, connection dropped); ``fault`` names the fault kind applied, if any.
    """

    method: str
    path: str
    route: str
    task_id: str | None
    status_code: int | None
    at: float
    fault: str | None = None


class WebhookDelivery(NamedTuple):
    """One webhook attempt; ``status_code`` is ``None`` when the endpoint was unreachable."""

    endpoint: str
    headers: dict[str, str]
    body: dict[str, Any]
    status_code: int | None


@dataclass(frozen=True)
class DueWebhook:
    """A webhook attempt the ticker should make now."""

    task_id: str
    endpoint: str
    headers: dict[str, str]
    body: dict[str, Any]


class InsufficientCredits(Exception):
    """The available balance cannot cover the task's price."""


class State:
    """Tasks, uploads, faults, counters and logs of one emulator."""

    def __init__(self, config: EmulatorConfig, clock: EmulatedClock) -> None:
        self.config = config
        self.clock = clock
        self.base_url = ""
        # Set when the server begins to stop: hangs and streams end instead of holding it up.
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed)
        self._clear()

    def _clear(self) -> None:
        self._tasks: dict[str, EmulatedTask] = {}
        self._active: set[str] = set()
        self._webhooks: set[str] = set()
        self._consumed_points = 0
        self._outputs: dict[str, str] = {}
        self._uploads: dict[str, tuple[bytes, str]] = {}
        self._faults: list[tuple[Fault, list[int]]] = []
        self._directives: deque[FailSpec | str] = deque()
        self._log: deque[LogEntry] = deque(maxlen=self.config.log_limit)
        self._creates = 0
        self._gets: Counter[str] = Counter()
        self._deliveries: list[WebhookDelivery] = []

    def reset(self) -> None:
        """Forget faults, tasks, uploads, counters, logs and deliveries."""
        with self._lock:
            self._clear()

    def _options(self) -> RenderOptions:
        return RenderOptions(
            base_url=self.base_url,
            output_key=self.config.output_key,
            empty_output=self.config.empty_output_before_completion,
        )

    # Faults and task-level directives

    def add_fault(self, fault: Fault) -> None:
        """Queue ``fault`` behind the faults already waiting."""
        with self._lock:
            self._faults.append((fault, [fault.times]))

    def take_fault(self, route: str) -> Fault | None:
        """Use up one application of the first waiting fault that matches ``route``."""
        with self._lock:
            for index, (fault, remaining) in enumerate(self._faults):
                if fault.matches(route):
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        del self._faults[index]
                    return fault
        return None

    def queue_failures(self, n: int, spec: FailSpec) -> None:
        """The next ``n`` recorded tasks fail upstream with ``spec``."""
        with self._lock:
            self._directives.extend([spec] * n)

    def queue_stuck(self, n: int) -> None:
        """The next ``n`` recorded tasks never leave ``processing``."""
        with self._lock:
            self._directives.extend([STICK] * n)

    # Tasks

    def add_task(self, request: CreateRequest, *, check_image: bool) -> EmulatedTask:
        """Record a new task (drawing its durations) and return it.

        Raises:
            InsufficientCredits: ``enforce_balance`` is on and the balance cannot cover it.
        """
        with self._lock:
            now = self.clock.now_ns()
            self._settle(now)
            if self.config.enforce_balance:
                available = self._balance_points() - self._frozen_points()
                if available < request.price_points:
                    raise InsufficientCredits
            if self.config.fixed_durations is not None:
                queue_s, generate_s = self.config.fixed_durations
            else:
                queue_s, generate_s = sample_durations(
                    self._rng,
                    request.model,
                    request.duration,
                    request.resolution,
                    self.config.timing,
                    active=len(self._active),
                )
            record = EmulatedTask(
                task_id=str(uuid.uuid4()),
                request=request,
                created_ns=now,
                queue_ns=seconds_to_ns(queue_s),
                generate_ns=seconds_to_ns(generate_s),
                output_name=f"{uuid.uuid4()}.mp4",
                image_check="pending" if check_image and request.image_url else "none",
            )
            directive = self._directives.popleft() if self._directives else None
            if directive == STICK:
                record.stuck = True
            elif isinstance(directive, FailSpec):
                record.fail = directive
            if request.webhook_endpoint:
                record.webhook = WebhookJob(request.webhook_endpoint, request.webhook_secret)
                self._webhooks.add(record.task_id)
            self._tasks[record.task_id] = record
            self._active.add(record.task_id)
            self._outputs[record.output_name] = record.task_id
            return record

    def render(self, task_id: str) -> dict[str, Any] | None:
        """The task object as a GET would answer it now, or ``None`` for an unknown id."""
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None:
                return None
            return render_task(record, self.clock.now_ns(), self._options())

    def task_ids(self) -> list[str]:
        """Ids of all recorded tasks, oldest first."""
        with self._lock:
            return list(self._tasks)

    def creates_recorded(self) -> int:
        """Number of tasks recorded."""
        with self._lock:
            return len(self._tasks)

    def finish_image_check(self, task_id: str, error: str | None) -> None:
        """Store the outcome of a task's image check (``error`` names the broken rule)."""
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None or record.image_check != "pending":
                return  # reset() ran meanwhile
            record.check_done_ns = self.clock.now_ns()
            record.image_check = "passed" if error is None else "failed"
            record.image_error = error

    def output_task(self, name: str) -> str | None:
        """The task whose output file is ``name``."""
        with self._lock:
            return self._outputs.get(name)

    # Money

    def _settle(self, now: int) -> None:
        # Terminal is forever (the clock only moves forward), so settled tasks leave the
        # active set and account reads stay proportional to the tasks still in flight.
        for task_id in list(self._active):
            record = self._tasks[task_id]
            status = record.status(now)
            if status in TERMINAL:
                if status == "completed":
                    self._consumed_points += record.request.price_points
                record.settled = True
                self._active.discard(task_id)

    def _balance_points(self) -> int:
        return round(self.config.balance_usd * POINTS_PER_USD) - self._consumed_points

    def _frozen_points(self) -> int:
        return sum(self._tasks[t].request.price_points for t in self._active)

    def account(self) -> dict[str, Any]:
        """``data`` of ``GET /account/info``: balance in USD and credits in points."""
        with self._lock:
            now = self.clock.now_ns()
            self._settle(now)
            balance = self._balance_points()
            frozen = self._frozen_points()
            consumed = self._consumed_points
        return {
            "account_id": self.config.account_name,
            "account_name": self.config.account_name,
            "plan": "creator",
            "is_enable": True,
            "equivalent_in_usd": balance / POINTS_PER_USD,
            "wallet": {"point_remain": balance, "point_frozen": frozen, "point_used": consumed},
            "credit_pack_info": {
                "available_credits": balance - frozen,
                "frozen_credits": frozen,
                "used_credits": consumed,
                "total_credits": balance + consumed,
            },
        }

    # Uploads

    def store_upload(self, data: bytes, extension: str, content_type: str) -> str:
        """Keep an uploaded file; return its name under ``/ephemeral/uploads/``."""
        name = f"{uuid.uuid4()}.{extension}"
        with self._lock:
            self._uploads[name] = (data, content_type)
        return name

    def uploaded_file(self, name: str) -> tuple[bytes, str] | None:
        """An uploaded file's bytes and content type."""
        with self._lock:
            return self._uploads.get(name)

    # Request log

    def count_request(self, route: str, task_id: str | None) -> None:
        """Count a request on arrival, so hung and dropped requests count too."""
        with self._lock:
            if route == "create":
                self._creates += 1
            elif route == "get" and task_id is not None:
                self._gets[task_id] += 1

    def log(self, entry: LogEntry) -> None:
        """Append one finished exchange to the request log."""
        with self._lock:
            self._log.append(entry)

    def log_entries(self) -> list[LogEntry]:
        """A copy of the request log."""
        with self._lock:
            return list(self._log)

    def creates(self) -> int:
        """``POST /api/v1/task`` requests received, rejected and faulted ones included."""
        with self._lock:
            return self._creates

    def gets(self, task_id: str | None = None) -> int:
        """``GET /api/v1/task/{id}`` requests received, for one id or all."""
        with self._lock:
            return self._gets[task_id] if task_id is not None else self._gets.total()

    # Webhooks

    def due_webhooks(self) -> list[DueWebhook]:
        """Webhook attempts due now; each is marked in flight until ``webhook_result``."""
        now = self.clock.now_ns()
        due: list[DueWebhook] = []
        with self._lock:
            for task_id in list(self._webhooks):
                record = self._tasks[task_id]
                job = record.webhook
                assert job is not None
                if job.in_flight:
                    continue
                status, _, ended = record.timeline(now)
                if status not in TERMINAL:
                    continue
                if job.next_due_ns is None:
                    job.next_due_ns = ended
                if job.next_due_ns is not None and now < job.next_due_ns:
                    continue
                job.in_flight = True
                headers = {"content-type": "application/json"}
                if job.secret:
                    headers["x-webhook-secret"] = job.secret
                body = {
                    "timestamp": now // NS_PER_S,
                    "data": render_task(record, now, self._options()),
                }
                due.append(DueWebhook(task_id, job.endpoint, headers, body))
        return due

    def webhook_result(self, due: DueWebhook, status_code: int | None) -> None:
        """Record one attempt and schedule a retry after a failure, if attempts remain."""
        with self._lock:
            self._deliveries.append(
                WebhookDelivery(due.endpoint, due.headers, due.body, status_code)
            )
            record = self._tasks.get(due.task_id)
            if record is None or record.webhook is None:
                return  # reset() ran meanwhile
            job = record.webhook
            job.in_flight = False
            job.attempts += 1
            ok = status_code is not None and 200 <= status_code < 300
            if ok or job.attempts >= self.config.webhook_attempts:
                job.done = True
                self._webhooks.discard(due.task_id)
            else:
                job.next_due_ns = self.clock.now_ns() + seconds_to_ns(
                    self.config.webhook_interval_s
                )

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """A copy of every webhook attempt so far."""
        with self._lock:
            return list(self._deliveries)
