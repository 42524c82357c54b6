"""The Starlette app: PiAPI's task, upload, account and file routes, with faults applied.

Every request goes through ``Api.dispatch``: take the next matching fault, apply it, check
``x-api-key``, run the route, log the exchange. Output and upload files need no key (they
are public CDN links upstream).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hailuo_mcp.emulator.background import Background
from hailuo_mcp.emulator.faults import Fault
from hailuo_mcp.emulator.responses import (
    CutResponse,
    completes,
    drop,
    envelope,
    error,
    json_response,
)
from hailuo_mcp.emulator.rules import RuleViolation, parse_create
from hailuo_mcp.emulator.state import InsufficientCredits, LogEntry, State
from hailuo_mcp.emulator.uploads import UploadError, parse_upload
from hailuo_mcp.emulator.video import VideoBody, sample_video

HANG_POLL_S = 0.01


@dataclass
class Exchange:
    """One request on its way through ``dispatch``."""

    route: str
    fault: Fault | None
    task_id: str | None = None


Handler = Callable[[Request, Exchange], Awaitable[Response]]


class Api:
    """Route handlers bound to one emulator's state."""

    def __init__(self, state: State, background: Background) -> None:
        self.state = state
        self.background = background

    async def dispatch(
        self,
        request: Request,
        route: str,
        handler: Handler,
        *,
        task_id: str | None = None,
        authenticate: bool = True,
    ) -> Response:
        """Apply faults and auth around ``handler`` and log the outcome."""
        self.state.count_request(route, task_id)
        exchange = Exchange(route, self.state.take_fault(route), task_id)
        response, answered = await self._answer(request, exchange, handler, authenticate)
        self.state.log(
            LogEntry(
                method=request.method,
                path=request.url.path,
                route=route,
                task_id=exchange.task_id,
                status_code=response.status_code if answered else None,
                at=self.state.clock.now(),
                fault=exchange.fault.kind if exchange.fault else None,
            )
        )
        return response

    async def _answer(
        self, request: Request, exchange: Exchange, handler: Handler, authenticate: bool
    ) -> tuple[Response, bool]:
        fault = exchange.fault
        if fault is not None:
            if fault.kind == "status":
                assert fault.status is not None
                media_type, body = fault.status_body(exchange.route)
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
                return Response(body, fault.status, headers, media_type), True
            if fault.kind == "malformed":
                media_type, body = fault.malformed_body()
                return Response(body, 200, media_type=media_type), True
            if fault.kind == "hang":
                outcome = await self._hang(request, fault.delay)
                if outcome == "stopped":
                    return drop(), False
                if outcome == "gone":
                    # The client hung up; uvicorn discards whatever we send now.
                    return Response(status_code=408), False
        if authenticate and not self._authorized(request):
            return error(401, "Invalid API key"), True
        response = await handler(request, exchange)
        if fault is not None and fault.kind == "truncate" and exchange.route != "download":
            body = bytes(response.body)
            return CutResponse(body, len(body) // 2, status_code=response.status_code), False
        return response, completes(response)

    async def _hang(
        self, request: Request, delay: float | None
    ) -> Literal["elapsed", "gone", "stopped"]:
        # Read the body first: is_disconnected() consumes receive() messages.
        await request.body()
        loop = asyncio.get_running_loop()
        deadline = math.inf if delay is None else loop.time() + delay
        while loop.time() < deadline:
            if self.state.stopping.is_set():
                return "stopped"
            if await request.is_disconnected():
                return "gone"
            await asyncio.sleep(HANG_POLL_S)
        return "elapsed"

    def _authorized(self, request: Request) -> bool:
        key = request.headers.get("x-api-key", "")
        expected = self.state.config.api_key
        return bool(key) if expected is None else key == expected

    # Routes

    async def route_create(self, request: Request) -> Response:
        """``POST /api/v1/task``."""
        return await self.dispatch(request, "create", self._create)

    async def _create(self, request: Request, exchange: Exchange) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error(400, "request body must be valid JSON")
        try:
            create = parse_create(body)
        except RuleViolation as exc:
            return error(400, str(exc))
        config = self.state.config
        try:
            record = self.state.add_task(create, check_image=config.check_images)
        except InsufficientCredits:
            return json_response(
                {"code": 402, "data": None, "message": "insufficient credits"}, 402
            )
        exchange.task_id = record.task_id
        if record.image_check == "pending":
            self.background.spawn(self.background.check_image(record.task_id, create.image_url))
        response = envelope(self.state.render(record.task_id), config.envelope_code)
        if exchange.fault is not None and exchange.fault.kind == "drop_after_record":
            return CutResponse(bytes(response.body), len(response.body) // 2)
        return response

    async def route_get(self, request: Request) -> Response:
        """``GET /api/v1/task/{task_id}``."""
        task_id = request.path_params["task_id"]
        return await self.dispatch(request, "get", self._get, task_id=task_id)

    async def _get(self, request: Request, exchange: Exchange) -> Response:
        assert exchange.task_id is not None
        task = self.state.render(exchange.task_id)
        if task is None:
            return error(404, "task not found")
        return envelope(task, self.state.config.envelope_code)

    async def route_upload(self, request: Request) -> Response:
        """``POST /api/ephemeral_resource``."""
        return await self.dispatch(request, "upload", self._upload)

    async def _upload(self, request: Request, exchange: Exchange) -> Response:
        try:
            upload = parse_upload(await request.body())
        except UploadError as exc:
            return error(400, str(exc))
        name = self.state.store_upload(upload.data, upload.extension, upload.content_type)
        url = f"{self.state.base_url}/ephemeral/uploads/{name}"
        return envelope({"url": url}, self.state.config.envelope_code)

    async def route_account(self, request: Request) -> Response:
        """``GET /account/info``."""
        return await self.dispatch(request, "account", self._account)

    async def _account(self, request: Request, exchange: Exchange) -> Response:
        return envelope(self.state.account(), self.state.config.envelope_code)

    async def route_download(self, request: Request) -> Response:
        """``GET /ephemeral/{name}``: a completed task's video."""
        return await self.dispatch(request, "download", self._download, authenticate=False)

    async def _download(self, request: Request, exchange: Exchange) -> Response:
        task_id = self.state.output_task(request.path_params["name"])
        exchange.task_id = task_id
        fault = exchange.fault
        if task_id is None or (fault is not None and fault.kind == "not_found"):
            return Response(b"Not Found", 404, media_type="text/plain")
        size = self.state.config.output_size
        truncated = fault is not None and fault.kind == "truncate"
        if size is None:
            return VideoBody.real(sample_video(), truncated, self.state.stopping)
        return VideoBody.synthetic(size, truncated, self.state.stopping)

    async def route_upload_file(self, request: Request) -> Response:
        """``GET /ephemeral/uploads/{name}``: a file stored by the upload route."""
        stored = self.state.uploaded_file(request.path_params["name"])
        if stored is None:
            response = Response(b"Not Found", 404, media_type="text/plain")
        else:
            response = Response(stored[0], media_type=stored[1])
        self.state.log(
            LogEntry(
                request.method,
                request.url.path,
                "upload_file",
                None,
                response.status_code,
                self.state.clock.now(),
            )
        )
        return response


def build_app(state: State) -> Starlette:
    """A fresh Starlette app serving ``state``; its lifespan runs the background work."""
    background = Background(state)
    api = Api(state, background)
    routes = [
        Route("/api/v1/task", api.route_create, methods=["POST"]),
        Route("/api/v1/task/{task_id}", api.route_get, methods=["GET"]),
        Route("/api/ephemeral_resource", api.route_upload, methods=["POST"]),
        Route("/account/info", api.route_account, methods=["GET"]),
        Route("/ephemeral/uploads/{name}", api.route_upload_file, methods=["GET"]),
        Route("/ephemeral/{name}", api.route_download, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=background.lifespan)
