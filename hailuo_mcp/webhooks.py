"""PiAPI's webhooks: a finished video noticed the moment PiAPI says so.

With HAILUO_PUBLIC_URL set, every create carries `webhook_config` pointing at
`<HAILUO_PUBLIC_URL>/webhooks/piapi` with a secret made once per server (kept in the state
folder, 0600). PiAPI POSTs `{"timestamp": <unix s>, "data": <task>}` with the secret verbatim in
`x-webhook-secret` when a task ends, and retries a non-2xx answer. The receiver checks the
secret in constant time, takes only task objects, drops repeats, records what it learns in the
ledger and publishes the snapshot on `TaskNews`, which wakes every wait on that task at once.
Polling goes on as the safety net: a missed webhook loses nothing.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hailuo_mcp.errors import HailuoError
from hailuo_mcp.flow import VideoService
from hailuo_mcp.models import Task, TaskStatus, is_valid_task_id

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/piapi"
_SECRET_FILE = "webhook-secret"
# Deliveries remembered to drop PiAPI's retries of one it already delivered.
_REMEMBERED = 4096
# A delivery is a task object: a few KB. Anything far larger is not PiAPI.
_MAX_BODY = 256 * 1024


def load_or_create_secret(state_dir: Path) -> SecretStr:
    """This server's webhook secret: made once, kept in the state folder readable by us only.

    Servers sharing the folder share the secret. The file appears whole or not at all (written
    aside, then linked into place), so a server starting at the same moment never reads it
    half-written (an empty secret would accept deliveries without one).
    """
    path = state_dir / _SECRET_FILE
    if (existing := _read_secret(path)) is not None:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_urlsafe(32)
    aside = state_dir / f".{_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secret)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(aside, path)  # fails if another server linked its secret first
        except FileExistsError:
            theirs = _read_secret(path)
            if theirs is not None:
                return theirs
            os.replace(aside, path)  # an empty file left by an older release: ours replaces it
    finally:
        aside.unlink(missing_ok=True)
    return SecretStr(secret)


def _read_secret(path: Path) -> SecretStr | None:
    try:
        value = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return SecretStr(value) if value else None


def webhook_endpoint(public_url: str) -> str:
    """Where PiAPI should POST: the receiver's path under the public URL."""
    return public_url.rstrip("/") + WEBHOOK_PATH


class WebhookInbox:
    """Takes PiAPI's deliveries for one server: checks, deduplicates, records, publishes."""

    def __init__(
        self,
        secret: SecretStr,
        service: Callable[[], VideoService],
        *,
        hide: tuple[SecretStr, ...] = (),
    ) -> None:
        self._secret = secret.get_secret_value().encode()
        self._service = service
        # An upstream error message may echo a secret: never let it reach the ledger.
        self._hide = tuple(h.get_secret_value() for h in hide if h.get_secret_value())
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def route(self) -> Route:
        """The Starlette route of the receiver."""
        return Route(WEBHOOK_PATH, self.receive, methods=["POST"])

    def app(self) -> Starlette:
        """An app with the receiver alone (stdio mode listens on HAILUO_WEBHOOK_LISTEN)."""
        return Starlette(routes=[self.route()])

    def _authentic(self, request: Request) -> bool:
        presented = request.headers.get("x-webhook-secret", "").encode()
        return hmac.compare_digest(presented, self._secret)

    async def receive(self, request: Request) -> JSONResponse:
        """One delivery: 2xx once it is recorded (PiAPI retries anything else)."""
        if not self._authentic(request):
            logger.warning("webhook refused: wrong or missing x-webhook-secret")
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.body()
        task, timestamp = _read_delivery(body)
        if task is None:
            return JSONResponse({"error": "not a PiAPI task delivery"}, status_code=400)
        if task.error_message:
            message = task.error_message
            for secret in self._hide:
                message = message.replace(secret, "[redacted]")
            task = task.model_copy(update={"error_message": message[:300]})
        key = (task.task_id, timestamp, task.status.value)
        if key in self._seen:
            return JSONResponse({"ok": True, "duplicate": True})
        try:
            await self._take(task)
        except HailuoError as exc:
            # Not recorded (the ledger is busy, say): a 5xx makes PiAPI deliver it again.
            logger.warning("webhook for %s not recorded: %s", task.task_id, exc.message)
            return JSONResponse({"error": "try again"}, status_code=503)
        self._seen[key] = None
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        return JSONResponse({"ok": True})

    async def _take(self, task: Task) -> None:
        service = self._service()
        known = await service.ledger.get(task.task_id)
        if known is None:
            await service.ledger.record_imported(task)
            logger.info("webhook: task %s was not ours; recorded as imported", task.task_id)
        elif known.status != task.status or task.status.is_terminal:
            await service.ledger.record_seen(task)
        logger.info("webhook: task %s is %s", task.task_id, task.status.value)
        service.news.publish(task)
        if task.status == TaskStatus.COMPLETED and not service.news.listening(task.task_id):
            # Nobody is waiting: save the video now, before its URL expires.
            service.track_in_background(task.task_id)


def _read_delivery(body: bytes) -> tuple[Task | None, str]:
    """The task and timestamp of a delivery, or None for anything that is not one."""
    if len(body) > _MAX_BODY:
        return None, ""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, ""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        return None, ""
    data = payload["data"]
    task = Task.from_upstream(data)
    if not is_valid_task_id(task.task_id) or task.status == TaskStatus.UNKNOWN:
        return None, ""
    if str(data.get("model") or "hailuo").lower() != "hailuo":
        return None, ""
    return task, str(payload.get("timestamp", ""))
