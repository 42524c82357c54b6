"""A faithful emulator of PiAPI's Hailuo task API, served over real HTTP.

It is a second, independent reading of ``piapi-contract.md`` and the seed page: it never
imports the client's models, settings or HTTP code, so one misreading cannot hide on both
sides. Importing this package builds nothing; ``running_emulator`` or ``serve`` do.
"""

from hailuo_mcp.emulator.clock import ZERO_TIME, EmulatedClock, rfc3339_ns
from hailuo_mcp.emulator.config import EmulatorConfig
from hailuo_mcp.emulator.control import Emulator, running_emulator, serve
from hailuo_mcp.emulator.faults import Fault
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
