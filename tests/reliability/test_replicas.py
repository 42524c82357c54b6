"""Replicas on one PostgreSQL: a SIGKILLed replica's tasks are taken over and saved once, and a
database restart mid-run loses nothing.

Everything is real: the PiAPI emulator in its own process, PostgreSQL from Debian's binaries
(tests/postgres.py), replicas as `python -m hailuo_mcp serve --transport streamable-http`
processes, the MCP Python SDK client over HTTP (tests/replicas.py). Calls wait 2 s and tasks take
about 4 s, so most tasks are still running when their call returns and the replica holding the
task's lease follows it in the background.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.postgres import PostgresServer, serve_postgres
from tests.replicas import (
    EmulatorProcess,
    Replica,
    emulator_process,
    holder_of,
    ledger_rows,
    mcp_client,
    running_replicas,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(240)]

SPEED = 20.0  # the emulator's tasks: 6 s queued + 70 s generating, 3.8 s of real time
SLOW_SPEED = 10.0
LEASE_S = 4.0
WAIT_S = 2.0
CALLS = 60
AT_ONCE = 12
KILL_AFTER = 20
SAVE_TIMEOUT_S = 90.0
# The database restart: down ~3 s plus pg_ctl's own stop and start (6-7 s in all here), within
# a lease (no lease expires) and within the ledger's 10 s connection timeout (a write waiting
# for a connection gets one once the server is back).
OUTAGE_S = 3.0
OUTAGE_LEASE_S = 10.0
# The long outage: beyond the connection timeout (ledger writes fail), within the default lease.
LONG_OUTAGE_S = 14.0
LONG_OUTAGE_LEASE_S = 20.0

UNFINISHED = (
    "(status NOT IN ('completed', 'failed', 'cancelled') OR (status = 'completed' AND "
    "video_path IS NULL AND video_url IS NOT NULL))"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL for the file; each test makes its own database."""
    yield from serve_postgres()


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    with emulator_process(SPEED) as emu:
        yield emu


@pytest.fixture
def slow_emulator() -> Iterator[EmulatorProcess]:
    """Tasks of 7.6 s: still running when the database goes away, done before it is back."""
    with emulator_process(SLOW_SPEED) as emu:
        yield emu


def prompt_of(index: int) -> str:
    return f"replica run call {index:02d}: a paper boat drifting on a pond at dawn"


@dataclass
class Call:
    """One generate_video call, and what became of it."""

    index: int
    prompt: str
    replica: str = ""
    task_id: str | None = None
    broken: bool = False  # the connection to a killed replica broke mid-call
    retried_on: str | None = None


async def generate(replica: Replica, prompt: str) -> dict[str, Any]:
    """One generate_video call; its structured result (not an error)."""
    async with mcp_client(replica.url) as client:
        result = await client.call_tool("generate_video", {"prompt": prompt})
    assert not result.is_error, result.content
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


async def ledger(database_url: str) -> dict[str, dict[str, Any]]:
    rows = await ledger_rows(database_url, "SELECT * FROM tasks")
    return {row["task_id"]: row for row in rows}


async def wait_all_saved(
    emulator: EmulatorProcess, database_url: str, expected: int, timeout: float = SAVE_TIMEOUT_S
) -> dict[str, dict[str, Any]]:
    """Until every task the emulator created has its video saved in the ledger (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = await emulator.tasks()
        rows = await ledger(database_url)
        unsaved = [
            task["task_id"]
            for task in tasks
            if not (row := rows.get(task["task_id"])) or not row["video_path"]
        ]
        if len(tasks) >= expected and not unsaved:
            return rows
        if time.monotonic() > deadline:
            detail = {
                task_id: {
                    key: rows[task_id][key]
                    for key in ("status", "lease_holder", "lease_until", "error_message")
                }
                if task_id in rows
                else "NOT IN THE LEDGER"
                for task_id in unsaved
            }
            pytest.fail(
                f"{len(unsaved)} of {len(tasks)} tasks not saved after {timeout:.0f} s: {detail}"
            )
        await anyio.sleep(0.25)


def check_saved_once(rows: dict[str, dict[str, Any]], output: Path) -> None:
    """Each task's video exactly once at its recorded path; nothing else in the folder."""
    paths = [Path(row["video_path"]) for row in rows.values()]
    assert all(path.is_file() and path.stat().st_size > 0 for path in paths)
    assert len(set(paths)) == len(paths), "two tasks recorded the same file"
    on_disk = sorted(path for path in output.rglob("*") if path.is_file())
    assert on_disk == sorted(paths), {
        "not recorded (a second copy, or a temp file left over)": sorted(set(on_disk) - set(paths)),
        "recorded but missing": sorted(set(paths) - set(on_disk)),
    }
    assert all(row["status"] == "completed" for row in rows.values())
    # Every lease ended with its task: nothing is held, by the living or the dead.
    assert [row["task_id"] for row in rows.values() if row["lease_holder"]] == []


async def creates_settled(emulator: EmulatorProcess) -> None:
    """Until every create the emulator received is recorded (or refused) and no new one arrived
    for 0.5 s: the requests a dead replica sent before dying have all been handled by then."""
    with anyio.fail_after(30):
        stats = await emulator.stats()
        before = (stats["creates"], stats["creates_recorded"])
        while True:
            await anyio.sleep(0.5)
            stats = await emulator.stats()
            now = (stats["creates"], stats["creates_recorded"])
            if now == before and now[0] == now[1]:
                return
            before = now


async def held_by(database_url: str, replica: Replica) -> list[str]:
    """The unfinished tasks whose lease the replica's process holds (or held, if it died)."""
    rows = await ledger_rows(
        database_url,
        f"SELECT task_id FROM tasks WHERE lease_holder LIKE %s AND {UNFINISHED}",
        (holder_of(replica.pid),),
    )
    return [row["task_id"] for row in rows]


async def measure_takeover(database_url: str, killed: Replica, orphans: set[str]) -> float:
    """Seconds from the SIGKILL until no unfinished task is leased to the dead replica."""
    assert killed.killed_at is not None
    with anyio.fail_after(3 * LEASE_S + 30):
        while True:
            held = await held_by(database_url, killed)
            if not held:
                return time.monotonic() - killed.killed_at
            orphans.update(held)
            await anyio.sleep(0.05)


async def test_a_killed_replica_s_tasks_are_taken_over_and_every_video_is_saved_once(
    postgres: PostgresServer, emulator: EmulatorProcess, tmp_path: Path
) -> None:
    database_url = postgres.new_database()
    started = time.monotonic()
    async with running_replicas(
        3,
        emulator,
        database_url,
        tmp_path,
        HAILUO_LEASE_SECONDS=str(LEASE_S),
        HAILUO_WAIT_SECONDS=str(WAIT_S),
    ) as replicas:
        ready_s = time.monotonic() - started
        victim = replicas[2]
        calls = [Call(index, prompt_of(index)) for index in range(CALLS)]
        finished = 0
        at_once = anyio.Semaphore(AT_ONCE)
        killed = anyio.Event()
        orphans: set[str] = set()
        takeover: list[float] = []

        async def run(call: Call) -> None:
            nonlocal finished
            async with at_once:
                live = [replica for replica in replicas if replica.alive]
                target = replicas[call.index % 3]
                if not target.alive:
                    target = live[call.index % len(live)]
                call.replica = target.name
                try:
                    call.task_id = (await generate(target, call.prompt))["task_id"]
                except Exception:
                    # The test's boundary: a connection cut by the SIGKILL breaks in several
                    # ways (a reset, a closed stream, an MCP error); a live replica's must not.
                    if target is not victim or not killed.is_set():
                        raise
                    call.broken = True
                finished += 1

        async def kill_when_busy() -> None:
            # After KILL_AFTER answers, once the victim is following unfinished tasks.
            with anyio.fail_after(120):
                while finished < KILL_AFTER:
                    await anyio.sleep(0.05)
                while len(await held_by(database_url, victim)) < 2:
                    await anyio.sleep(0.05)
            victim.kill()
            killed.set()
            takeover.append(await measure_takeover(database_url, victim, orphans))

        async with anyio.create_task_group() as group:
            group.start_soon(kill_when_busy)
            for call in calls:
                group.start_soon(run, call)
                # Start in order (round-robin), a few in flight at a time.
                await anyio.sleep(0.01)
        calls_s = time.monotonic() - started - ready_s

        # A broken call was retried only if its create never reached PiAPI (its distinct
        # prompt is not among the emulator's tasks once the dead replica's requests are in).
        await creates_settled(emulator)
        by_prompt = {task["prompt"]: task["task_id"] for task in await emulator.tasks()}
        broken = [call for call in calls if call.broken]
        for call in broken:
            if call.prompt in by_prompt:
                call.task_id = by_prompt[call.prompt]
            else:
                target = replicas[call.index % 2]
                call.retried_on = target.name
                call.task_id = (await generate(target, call.prompt))["task_id"]

        rows = await wait_all_saved(emulator, database_url, CALLS)
        total_s = time.monotonic() - started
        survivors_ready = [await replica.ready() for replica in replicas[:2]]

    tasks = await emulator.tasks()
    stats = await emulator.stats()
    # One create per call, for all 60 calls: none twice, none lost, none a retry's double.
    twice = [p for p, n in Counter(task["prompt"] for task in tasks).items() if n > 1]
    assert not twice, [
        (
            call,
            [task for task in tasks if task["prompt"] == call.prompt],
            rows.get(call.task_id or ""),
        )
        for call in calls
        if call.prompt in twice
    ]
    assert stats["creates"] == CALLS == stats["creates_recorded"] == len(tasks)
    assert Counter(task["prompt"] for task in tasks) == Counter(call.prompt for call in calls)
    assert {call.task_id for call in calls} == {task["task_id"] for task in tasks}
    # Every task the emulator created is in the ledger with its own prompt, saved once.
    assert set(rows) == {task["task_id"] for task in tasks}
    assert all(rows[task["task_id"]]["prompt"] == task["prompt"] for task in tasks)
    check_saved_once(rows, tmp_path / "videos")
    assert survivors_ready == [True, True]
    assert not victim.alive
    # The dead replica did hold unfinished tasks, and others took every one of them.
    assert orphans, "the replica was killed while following nothing"
    assert takeover and takeover[0] < 3 * LEASE_S + 10
    per_replica = Counter(call.replica for call in calls)
    print(
        f"\nreplicas: {CALLS} calls over 3 replicas {dict(per_replica)}, victim {victim.name} "
        f"killed after {KILL_AFTER}; {len(broken)} calls broken by the kill "
        f"({sum(1 for c in broken if c.retried_on is None)} had created their task, "
        f"{sum(1 for c in broken if c.retried_on)} retried elsewhere); "
        f"{len(orphans)} unfinished tasks taken over in {takeover[0]:.1f} s "
        f"(lease {LEASE_S:.0f} s); creates {stats['creates']}, gets {stats['gets']}, "
        f"downloads {stats['downloads']}; ready {ready_s:.1f} s, calls {calls_s:.1f} s, "
        f"total {total_s:.1f} s"
    )


async def test_a_postgres_restart_mid_run_loses_no_task_and_the_replicas_answer_again(
    postgres: PostgresServer, slow_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    await restart_mid_run(
        postgres, slow_emulator, tmp_path, OUTAGE_S, OUTAGE_LEASE_S, SAVE_TIMEOUT_S
    )


async def test_a_postgres_outage_longer_than_the_ledger_timeout_loses_no_task(
    postgres: PostgresServer, slow_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    await restart_mid_run(
        postgres, slow_emulator, tmp_path, LONG_OUTAGE_S, LONG_OUTAGE_LEASE_S, 20.0
    )


async def restart_mid_run(
    postgres: PostgresServer,
    emulator: EmulatorProcess,
    tmp_path: Path,
    outage: float,
    lease_s: float,
    save_timeout: float,
) -> None:
    """Tasks in flight on two replicas; PostgreSQL stopped for `outage` s and started again."""
    database_url = postgres.new_database()
    started = time.monotonic()
    async with running_replicas(
        2,
        emulator,
        database_url,
        tmp_path,
        HAILUO_LEASE_SECONDS=str(lease_s),
        HAILUO_WAIT_SECONDS=str(WAIT_S),
    ) as replicas:
        answers: dict[str, dict[str, Any]] = {}

        async def call(index: int) -> None:
            prompt = prompt_of(index)
            answers[prompt] = await generate(replicas[index % 2], prompt)

        # Eight tasks in flight, followed in the background on both replicas...
        async with anyio.create_task_group() as group:
            for index in range(8):
                group.start_soon(call, index)
        assert all(not answer["done"] for answer in answers.values())
        creates_before = (await emulator.stats())["creates"]
        unfinished = f"SELECT task_id FROM tasks WHERE {UNFINISHED}"
        in_flight = await ledger_rows(database_url, unfinished)

        # ...when PostgreSQL goes away, and comes back.
        down_at = time.monotonic()
        await anyio.to_thread.run_sync(postgres.stop)
        during: list[Any] = []

        async def call_while_down() -> None:
            async with mcp_client(replicas[0].url) as client:
                during.append(await client.call_tool("generate_video", {"prompt": prompt_of(90)}))

        async with anyio.create_task_group() as group:
            group.start_soon(call_while_down)
            await anyio.sleep(outage)
            await anyio.to_thread.run_sync(postgres.start)
        outage_s = time.monotonic() - down_at

        # Both replicas reconnect on their own: ready again, and new calls work.
        with anyio.fail_after(30):
            for replica in replicas:
                while not await replica.ready():
                    await anyio.sleep(0.1)
        back_s = time.monotonic() - down_at
        async with anyio.create_task_group() as group:
            for index in range(8, 16):
                group.start_soon(call, index)
        rows = await wait_all_saved(emulator, database_url, 16, save_timeout)
        total_s = time.monotonic() - started

    tasks = await emulator.tasks()
    stats = await emulator.stats()
    by_prompt = Counter(task["prompt"] for task in tasks)
    # The call made while the ledger was down either failed before paying (no create) or,
    # having waited out the outage, created exactly one task.
    outage_result = during[0]
    assert by_prompt[prompt_of(90)] == (0 if outage_result.is_error else 1)
    assert creates_before == 8
    assert len(in_flight) >= 4, "the tasks ended before the database went away"
    assert stats["creates"] == 16 + by_prompt[prompt_of(90)] == len(tasks)
    assert all(by_prompt[prompt_of(index)] == 1 for index in range(16))
    assert set(rows) == {task["task_id"] for task in tasks}
    check_saved_once(rows, tmp_path / "videos")
    print(
        f"\npostgres restart: {len(in_flight)} tasks in flight on 2 replicas, database down "
        f"{outage_s:.1f} s, both replicas ready {back_s:.1f} s after it went down; the call "
        f"during the outage {'failed cleanly' if outage_result.is_error else 'waited and worked'}"
        f"; {len(tasks)} tasks, all saved once; total {total_s:.1f} s"
    )
