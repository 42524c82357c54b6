"""Scriptable faults: what the next matching requests get instead of a normal answer.

Kinds and where they apply:

========================  =============================================================
``status``                any route: answer ``status`` with a body shaped like real
                          upstreams (envelope, ``{"error"}`` or ``{"description"}``) and
                          ``Retry-After`` when ``retry_after`` is set; a faulted create
                          records no task
``hang``                  any route: no answer until ``delay`` real seconds pass (then a
                          normal answer), the client goes away, or the server stops (then
                          the connection is dropped)
``malformed``             create, get, upload, account: ``200`` with a non-JSON or
                          truncated-JSON body
``drop_after_record``     create: the task is recorded, then the response is cut short so
                          the client never learns its id
``truncate``              get, upload, account, download: ``Content-Length`` promises the
                          full body, half of it is sent, the connection closes
``not_found``             download: the output URL answers 404 (ephemeral file expired)
========================  =============================================================

Route ``"any"`` matches every route where the kind applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Route = Literal["create", "get", "upload", "account", "download"]
FaultRoute = Literal["create", "get", "upload", "account", "download", "any"]
FaultKind = Literal["status", "hang", "malformed", "drop_after_record", "truncate", "not_found"]

ROUTES: tuple[Route, ...] = ("create", "get", "upload", "account", "download")
APPLIES_TO: dict[str, frozenset[str]] = {
    "status": frozenset(ROUTES),
    "hang": frozenset(ROUTES),
    "malformed": frozenset({"create", "get", "upload", "account"}),
    "drop_after_record": frozenset({"create"}),
    "truncate": frozenset({"get", "upload", "account", "download"}),
    "not_found": frozenset({"download"}),
}

# Real upstreams (and the proxies in front of them) answer errors in several shapes; clients
# must cope with all of them, so the defaults vary on purpose.
_DEFAULT_BODIES: dict[int, tuple[str, bytes]] = {
    401: ("application/json", b'{"code":401,"data":null,"message":"Invalid API key"}'),
    402: ("application/json", b'{"code":402,"message":"insufficient credits"}'),
    403: ("application/json", b'{"code":403,"data":null,"message":"forbidden"}'),
    429: ("application/json", b'{"error":"too many requests, please slow down"}'),
    500: ("application/json", b'{"code":500,"data":null,"message":"internal server error"}'),
    502: (
        "text/html; charset=utf-8",
        b"<html><head><title>502 Bad Gateway</title></head>"
        b"<body><center><h1>502 Bad Gateway</h1></center></body></html>",
    ),
    503: ("application/json", b'{"description":"service temporarily unavailable"}'),
    504: ("text/plain; charset=utf-8", b"upstream request timeout"),
}
_UPLOAD_403 = (
    "application/json",
    b'{"code":403,"data":null,"message":"Insufficient plan level"}',
)
MALFORMED_BODY = b'{"code": 200, "data": {"task_id": "'


@dataclass(frozen=True)
class Fault:
    """One scripted fault for the next ``times`` requests that match ``route``.

    ``body`` replaces the default body (a mapping is sent as JSON, ``str``/``bytes`` as is);
    ``delay`` (real seconds) bounds a hang; ``retry_after`` adds a ``Retry-After`` header.
    """

    route: FaultRoute
    kind: FaultKind
    times: int = 1
    status: int | None = None
    retry_after: float | int | str | None = None
    body: dict[str, Any] | str | bytes | None = None
    delay: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in APPLIES_TO:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.route != "any" and self.route not in APPLIES_TO[self.kind]:
            raise ValueError(f"fault kind {self.kind!r} does not apply to route {self.route!r}")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.kind == "status" and (self.status is None or not 400 <= self.status <= 599):
            raise ValueError("a status fault needs an HTTP error status (400-599)")
        if self.delay is not None and self.delay < 0:
            raise ValueError("delay must not be negative")

    def matches(self, route: str) -> bool:
        """Whether this fault applies to a request on ``route``."""
        return (self.route == "any" or self.route == route) and route in APPLIES_TO[self.kind]

    def status_body(self, route: str) -> tuple[str, bytes]:
        """Content type and body for a ``status`` fault on ``route``."""
        if self.body is not None:
            return encode_body(self.body)
        assert self.status is not None  # checked in __post_init__
        if self.status == 403 and route == "upload":
            return _UPLOAD_403
        default = _DEFAULT_BODIES.get(self.status)
        if default is not None:
            return default
        return encode_body({"code": self.status, "data": None, "message": "request failed"})

    def malformed_body(self) -> tuple[str, bytes]:
        """Content type and body for a ``malformed`` fault."""
        if self.body is not None:
            return "application/json", encode_body(self.body)[1]
        return "application/json", MALFORMED_BODY


def encode_body(body: dict[str, Any] | str | bytes) -> tuple[str, bytes]:
    """Encode a fault body: mappings as JSON, text as UTF-8, bytes unchanged."""
    if isinstance(body, bytes):
        return "application/octet-stream", body
    if isinstance(body, str):
        return "text/plain; charset=utf-8", body.encode()
    return "application/json", json.dumps(body, separators=(",", ":")).encode()
