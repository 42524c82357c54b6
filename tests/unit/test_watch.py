"""The wait that anything can wake: news of a task reaches every wait on it at once, and the
feed polls only when the schedule says (or just before its budget ends)."""

from __future__ import annotations

import time

import anyio
import pytest

from hailuo_mcp.errors import RateLimitedError
from hailuo_mcp.models import Task, TaskStatus
from hailuo_mcp.polling import PollSchedule
from hailuo_mcp.watch import TaskNews

pytestmark = pytest.mark.anyio

PENDING = Task(task_id="t-1", status=TaskStatus.PENDING)
DONE = Task(task_id="t-1", status=TaskStatus.COMPLETED, video_url="http://x/v.mp4")


class Upstream:
    """A fetch that answers from a script and counts its calls."""

    def __init__(self, *answers: Task | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, task_id: str) -> Task:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_published_news_wakes_a_wait_at_once_without_a_poll() -> None:
    news = TaskNews()
    upstream = Upstream(PENDING)
    # A 77 s schedule: its first poll is 2.3 s away.
    with news.follow(
        PENDING, fetch=upstream, schedule=PollSchedule(77.0), budget=60, created_here=True
    ) as feed:
        async with anyio.create_task_group() as group:
            started = time.monotonic()

            async def webhook() -> None:
                await anyio.sleep(0.05)
                news.publish(DONE)

            group.start_soon(webhook)
            with anyio.fail_after(2):
                seen = await feed.next()
    assert seen == DONE and upstream.calls == 0
    assert time.monotonic() - started < 1.0


async def test_every_wait_on_a_task_hears_the_poll_of_another() -> None:
    news = TaskNews()
    fast = Upstream(DONE)
    slow = Upstream(PENDING)
    with (
        news.follow(
            PENDING, fetch=fast, schedule=PollSchedule(0.5), budget=10, created_here=True
        ) as polling,
        news.follow(
            PENDING, fetch=slow, schedule=PollSchedule(77.0), budget=60, created_here=True
        ) as waiting,
    ):
        with anyio.fail_after(5):
            assert await polling.next() == DONE
            assert await waiting.next() == DONE  # heard, not polled
    assert (fast.calls, slow.calls) == (1, 0)
    assert not news.listening("t-1")


async def test_the_last_look_comes_before_the_budget_ends() -> None:
    news = TaskNews()
    upstream = Upstream(DONE)
    # The schedule's first poll (2.3 s) is past the 1 s budget: only the last look sees it.
    with news.follow(
        PENDING, fetch=upstream, schedule=PollSchedule(77.0), budget=1.0, created_here=True
    ) as feed:
        with anyio.fail_after(3):
            assert await feed.next() == DONE
    assert upstream.calls == 1 and feed.elapsed < 1.0


async def test_retry_after_is_honoured_by_a_later_wait_until_the_task_answers_again() -> None:
    news = TaskNews()
    limited = Upstream(RateLimitedError("slow down", task_id="t-1", retry_after=3600))
    with news.follow(
        PENDING, fetch=limited, schedule=PollSchedule(0.5), budget=0.5, created_here=True
    ) as feed:
        with anyio.fail_after(3):
            assert await feed.next() is None
    later = Upstream(DONE)
    with news.follow(
        PENDING, fetch=later, schedule=PollSchedule(0.5), budget=0.5, created_here=True
    ) as feed:
        with anyio.fail_after(3):
            assert await feed.next() is None
    assert later.calls == 0  # still inside the hour PiAPI asked for
    news.publish(PENDING)  # an answer came (get_task asked): the pause is over
    with news.follow(
        PENDING, fetch=later, schedule=PollSchedule(0.5), budget=2, created_here=True
    ) as feed:
        with anyio.fail_after(3):
            assert await feed.next() == DONE
