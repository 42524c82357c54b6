"""A faithful emulator of PiAPI's Hailuo task API, served over real HTTP.

It is a second, independent reading of PiAPI's Hailuo generate-video page ("seed" in the
glossary of docs/ARCHITECTURE.md): it never imports the client's models, settings or HTTP
code, so one misreading cannot hide on both sides. Importing this package builds nothing;
``running_emulator`` or ``serve`` do::

    with running_emulator(EmulatorConfig(api_key="k", speed=100)) as emu:
        emu.add_fault(Fault("create", "status", status=429, retry_after=2))
        ...  # point a client at emu.url / emu.upload_url
        emu.advance(80)  # or let the fast clock run

Modules: ``options`` (``EmulatorConfig``), ``rules`` (input and price tables), ``timing``
(duration model), ``clock``, ``tasks`` (``EmulatedTask`` and the task object), ``state``
(everything remembered, behind one lock), ``faults``, ``app`` (routes), ``background``
(ticker, image checks), ``webhook_delivery``, ``image_rules``, ``uploads``, ``video``, ``runner``
(uvicorn), ``control`` (the ``Emulator`` facade). No class or module here shares a name with
the client side, so a search for a name lands on one side only.

Faults that cut a connection make uvicorn log "ASGI callable returned without completing
response" on ``uvicorn.error``; that line is expected there.
"""

from hailuo_mcp.emulator.clock import ZERO_TIME, EmulatedClock, rfc3339_ns
from hailuo_mcp.emulator.control import Emulator, running_emulator, serve
from hailuo_mcp.emulator.faults import Fault
from hailuo_mcp.emulator.options import EmulatorConfig
from hailuo_mcp.emulator.rules import POINTS_PER_USD, PRICE_POINTS
from hailuo_mcp.emulator.state import LogEntry, WebhookDelivery
from hailuo_mcp.emulator.timing import TimingParams, generation_median, sample_durations

__all__ = [
    "POINTS_PER_USD",
    "PRICE_POINTS",
    "ZERO_TIME",
    "EmulatedClock",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "LogEntry",
    "TimingParams",
    "WebhookDelivery",
    "generation_median",
    "rfc3339_ns",
    "running_emulator",
    "sample_durations",
    "serve",
]
