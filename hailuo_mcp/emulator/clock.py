"""The emulated clock: real elapsed time times a speed factor, plus explicit advances.

Tasks never store a status; every read computes it from this clock, so tests can move time
forward (``advance``) or run it fast (``speed``) instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

NS_PER_S = 1_000_000_000
ZERO_TIME = "0001-01-01T00:00:00Z"


class EmulatedClock:
    """A monotonic emulated wall clock in integer nanoseconds since the Unix epoch."""

    def __init__(
        self,
        speed: float = 1.0,
        *,
        start_ns: int | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._speed = speed
        self._monotonic_ns = monotonic_ns
        self._origin_real = monotonic_ns()
        # Start at the real wall time so timestamps look like the ones PiAPI sends.
        self._origin_ns = time.time_ns() if start_ns is None else start_ns
        self._offset_ns = 0
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        """How many emulated seconds pass per real second."""
        return self._speed

    def now_ns(self) -> int:
        """Current emulated time in nanoseconds since the epoch."""
        elapsed = self._monotonic_ns() - self._origin_real
        with self._lock:
            offset = self._offset_ns
        return self._origin_ns + int(elapsed * self._speed) + offset

    def now(self) -> float:
        """Current emulated time in seconds since the epoch."""
        return self.now_ns() / NS_PER_S

    def advance(self, seconds: float) -> None:
        """Move emulated time forward; it never goes back, so terminal states stay terminal."""
        if seconds < 0:
            raise ValueError("the emulated clock only moves forward")
        with self._lock:
            self._offset_ns += int(seconds * NS_PER_S)

    def real_seconds(self, emulated_seconds: float) -> float:
        """Real seconds that ``emulated_seconds`` take at this clock's speed."""
        return emulated_seconds / self._speed


def rfc3339_ns(ns: int | None) -> str:
    """Format epoch nanoseconds as RFC 3339 with 9 fractional digits and ``Z``.

    ``None`` (a time not reached yet) gives PiAPI's zero time ``0001-01-01T00:00:00Z``.
    """
    if ns is None:
        return ZERO_TIME
    seconds, fraction = divmod(ns, NS_PER_S)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"
