"""Envelopes, error answers, and answers that break on purpose (cut connections)."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


def dump(payload: Any) -> bytes:
    """Compact JSON like PiAPI's answers."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(payload: Any, status_code: int = 200) -> Response:
    """A JSON answer."""
    return Response(dump(payload), status_code=status_code, media_type="application/json")


def envelope(data: Any, code: int = 200, message: str = "success") -> Response:
    """The ``{"code", "data", "message"}`` envelope around a successful answer."""
    return json_response({"code": code, "data": data, "message": message})


def error(status_code: int, message: str) -> Response:
    """An error envelope whose ``code`` repeats the HTTP status."""
    return json_response({"code": status_code, "data": None, "message": message}, status_code)


class CutResponse(Response):
    """Headers promising ``len(body)`` bytes, then only ``sent`` of them, then a closed socket.

    Returning from an ASGI app before the body is complete makes uvicorn close the transport
    (it logs "ASGI callable returned without completing response" on ``uvicorn.error``), so
    the client sees a real transport error, not an HTTP status.
    """

    def __init__(
        self,
        body: bytes,
        sent: int,
        *,
        status_code: int = 200,
        media_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(body, status_code=status_code, media_type=media_type, headers=headers)
        self._sent = max(0, min(sent, len(body) - 1))
        self.completes = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if self._sent:
            await send(
                {"type": "http.response.body", "body": self.body[: self._sent], "more_body": True}
            )


def completes(response: Response) -> bool:
    """Whether ``response`` sends everything its headers promise."""
    return bool(getattr(response, "completes", True))


def drop() -> Response:
    """Cut the connection without sending any body (a response that never completes)."""
    return CutResponse(b"{}", 0)
