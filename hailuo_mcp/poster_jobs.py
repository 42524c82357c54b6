"""Posters made in the background, waited for by an answer only within a budget.

A poster costs ~30 ms of a core at 480p (more at 1080p) and is made at most POSTERS_AT_ONCE at a
time. When many tasks end together (a team's server, a batch), the posters queue: an answer that
waited for its own would come seconds, even tens of seconds, after its video was saved
(docs/PERFORMANCE.md, many tasks). So the answer waits at most `wait_s`; past it, the answer
goes without the frame and says so, the poster is still made and cached beside the video, and
the next get_task attaches it. A cached poster is read without queueing behind the decoders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from hailuo_mcp.poster import Poster, cached_poster, make_poster, preview_available

logger = logging.getLogger(__name__)

# How long an answer waits for its poster (one decode takes well under a second when idle).
POSTER_WAIT_S = 2.0
# Decoded at once: PyAV decodes without holding the GIL, so two use both cores of a small
# machine; more would only add decoders' memory (tens of MB each at 1080p) to a burst.
POSTERS_AT_ONCE = 2


@dataclass
class _Job:
    done: anyio.Event = field(default_factory=anyio.Event)
    poster: Poster | None = None


class PosterMaker:
    """Posters of saved videos, made in the lifespan's task group, one job per video."""

    def __init__(
        self, group: TaskGroup, *, at_once: int = POSTERS_AT_ONCE, wait_s: float = POSTER_WAIT_S
    ) -> None:
        self._group = group
        self._limiter = anyio.CapacityLimiter(at_once)
        self._wait_s = wait_s
        self._jobs: dict[Path, _Job] = {}

    async def poster(self, video: Path) -> tuple[Poster | None, bool]:
        """The poster of `video` and whether one is still being made (the wait ran out).

        (None, False): there is none (no PyAV, or a file PyAV cannot read; poster.py logs why).
        """
        cached = await anyio.to_thread.run_sync(cached_poster, video)
        if cached is not None or not preview_available():
            return cached, False
        job = self._jobs.get(video)
        if job is None:
            job = self._jobs[video] = _Job()
            self._group.start_soon(self._make, video, job, name=f"poster {video.name}")
        with anyio.move_on_after(self._wait_s):
            await job.done.wait()
        return job.poster, not job.done.is_set()

    async def _make(self, video: Path, job: _Job) -> None:
        try:
            job.poster = await anyio.to_thread.run_sync(make_poster, video, limiter=self._limiter)
        except Exception:
            # The top of a background task: a bug here must not end the server.
            logger.exception("poster of %s could not be made", video.name)
        finally:
            job.done.set()
            self._jobs.pop(video, None)
