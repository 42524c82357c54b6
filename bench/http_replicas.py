"""Replicas on PostgreSQL over streamable HTTP: throughput, latency, ledger work, takeover.

Real processes throughout (tests/replicas.py): the PiAPI emulator in its own process, a
throwaway PostgreSQL from Debian's binaries with pg_stat_statements loaded (tests/postgres.py),
replicas as `python -m hailuo_mcp serve --transport streamable-http`, the MCP Python SDK client.

1. Throughput and latency of estimate_cost and get_task (a saved task, answered from the ledger)
   with N concurrent clients, each holding one session: one replica against three, both fleets
   up at once and taking turns in blocks; the one-replica fleet is the baseline of the same run.
2. Ledger work per generated task: statements (pg_stat_statements), commits (pg_stat_database)
   and rows written (pg_stat_user_tables), for calls that wait for the video and for calls that
   return first and leave it to the background; the lease keeper's periodic work apart.
3. Takeover: a replica following unfinished tasks is SIGKILLed; seconds until another replica
   holds the last of them, repeated.

    .venv/bin/python bench/http_replicas.py [--clients 8] [--seconds 4] [--rounds 4]
        [--tasks 10] [--takeovers 5] [--leases 4 20] [--parts 1 2 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import machine, quantile  # noqa: E402

from tests.postgres import PostgresServer, running_postgres  # noqa: E402
from tests.replicas import (  # noqa: E402
    EmulatorProcess,
    Replica,
    emulator_process,
    free_port,
    holder_of,
    ledger_rows,
    mcp_client,
    replica_env,
)

SPEED = 20.0
UNFINISHED = (
    "(status NOT IN ('completed', 'failed', 'cancelled') OR (status = 'completed' AND "
    "video_path IS NULL AND video_url IS NOT NULL))"
)


def with_statements(server: PostgresServer) -> None:
    """Restart `server` with pg_stat_statements loaded (tests/postgres.py starts it without)."""
    server.stop()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.socket_dir} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
    )
    server._call(
        "pg_ctl",
        "-D",
        str(server.data_dir),
        "-l",
        str(server.root / "server.log"),
        "-o",
        options,
        "-w",
        "start",
    )


class Fleet:
    """Replicas on one database and one video folder; more can be started, any killed."""

    def __init__(self, emulator: EmulatorProcess, database_url: str, root: Path, **env: str):
        self.emulator = emulator
        self.database_url = database_url
        self.root = root
        self.env = env
        self.replicas: list[Replica] = []

    async def add(self, count: int = 1) -> list[Replica]:
        """Start `count` replicas and wait until each is ready."""
        started = []
        for _ in range(count):
            index = len(self.replicas)
            state = self.root / f"replica{index}"
            state.mkdir(parents=True, exist_ok=True)
            env = replica_env(
                self.emulator, self.database_url, self.root / "videos", state, **self.env
            )
            replica = Replica(f"r{index}", free_port(), env, self.root / f"replica{index}.log")
            replica.start()
            self.replicas.append(replica)
            started.append(replica)
        for replica in started:
            await replica.wait_ready()
        return started

    @property
    def live(self) -> list[Replica]:
        """The replicas still running."""
        return [replica for replica in self.replicas if replica.alive]

    def stop(self) -> None:
        """Stop every replica."""
        for replica in self.replicas:
            replica.stop()


@asynccontextmanager
async def fleet(
    emulator: EmulatorProcess, database_url: str, root: Path, **env: str
) -> AsyncIterator[Fleet]:
    """A Fleet, stopped afterwards."""
    replicas = Fleet(emulator, database_url, root, **env)
    try:
        yield replicas
    finally:
        replicas.stop()


def ok(result: Any) -> dict[str, Any]:
    """A tool result's structured content; raises on an error result."""
    if result.is_error:
        raise RuntimeError(f"tool error: {result.content}")
    content: dict[str, Any] = result.structured_content
    return content


async def generate(replica: Replica, prompt: str, wait: float) -> dict[str, Any]:
    """One generate_video call on its own session; its structured result."""
    async with mcp_client(replica.url) as client:
        return ok(
            await client.call_tool("generate_video", {"prompt": prompt, "wait_seconds": wait})
        )


async def saved_task(replica: Replica) -> str:
    """A task generated and saved through `replica` (get_task's subject)."""
    async with mcp_client(replica.url) as client:
        answer = ok(
            await client.call_tool(
                "generate_video", {"prompt": "a saved task for get_task", "wait_seconds": 60}
            )
        )
    assert answer["done"], answer
    task_id: str = answer["task_id"]
    return task_id


async def load(
    replicas: list[Replica], clients: int, seconds: float, tool: str, arguments: dict[str, Any]
) -> tuple[float, list[float]]:
    """`clients` sessions spread over `replicas`, calling `tool` back to back for `seconds`;
    returns calls per second and every call's latency in ms."""
    latencies: list[float] = []
    ready = anyio.Event()
    opened = 0

    async def client(index: int) -> None:
        nonlocal opened
        replica = replicas[index % len(replicas)]
        async with mcp_client(replica.url) as session:
            ok(await session.call_tool(tool, arguments))  # warm-up
            opened += 1
            if opened == clients:
                ready.set()
            await ready.wait()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                ok(await session.call_tool(tool, arguments))
                latencies.append((time.perf_counter() - began) * 1000)

    async with anyio.create_task_group() as group:
        for index in range(clients):
            group.start_soon(client, index)
    return len(latencies) / seconds, latencies


async def throughput(
    emulator: EmulatorProcess,
    server: PostgresServer,
    root: Path,
    clients: int,
    seconds: float,
    rounds: int,
) -> dict[str, dict[int, tuple[list[float], list[float]]]]:
    """estimate_cost and get_task under load on one replica and on three, both fleets up at
    once and taking turns in blocks (drift on a shared machine hits both alike).

    Returns, per tool and fleet size, each block's calls per second and every latency in ms.
    """
    figures: dict[str, dict[int, tuple[list[float], list[float]]]] = {}
    async with (
        fleet(emulator, server.new_database(), root / "load1", HAILUO_LOG_LEVEL="WARNING") as one,
        fleet(emulator, server.new_database(), root / "load3", HAILUO_LOG_LEVEL="WARNING") as three,
    ):
        await one.add(1)
        await three.add(3)
        fleets = {1: one, 3: three}
        subjects = {size: await saved_task(f.replicas[0]) for size, f in fleets.items()}
        for tool in ("estimate_cost", "get_task"):
            figures[tool] = {1: ([], []), 3: ([], [])}
            client_cpu = {1: 0.0, 3: 0.0}
            for _ in range(rounds):
                for size, replicas in fleets.items():
                    arguments: dict[str, Any] = (
                        {"duration": 6, "resolution": 768}
                        if tool == "estimate_cost"
                        else {"task_id": subjects[size], "wait_seconds": 0}
                    )
                    cpu = time.process_time()
                    rate, latencies = await load(
                        replicas.replicas, clients, seconds, tool, arguments
                    )
                    client_cpu[size] += time.process_time() - cpu
                    figures[tool][size][0].append(rate)
                    figures[tool][size][1].extend(latencies)
            for size in (1, 3):
                rates, latencies = figures[tool][size]
                print(
                    f"  {size} replica(s), {tool}: {statistics.median(rates):.0f} calls/s "
                    f"(blocks {min(rates):.0f}-{max(rates):.0f}), p50 "
                    f"{quantile(latencies, 0.5):.1f} ms, p99 {quantile(latencies, 0.99):.1f} ms; "
                    f"the clients' process used {client_cpu[size] / (rounds * seconds):.2f} cores",
                    flush=True,
                )
    return figures


ROLE = "hailuo_replica"


async def replica_database(server: PostgresServer) -> str:
    """A new database the replicas reach as their own role, with pg_stat_statements, so their
    statements are counted apart from the bench's own queries."""
    admin_url = server.new_database()
    name = admin_url.rsplit("/", 1)[1]
    roles = await ledger_rows(server.url, "SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))
    if not roles:
        await ledger_rows(server.url, f"CREATE ROLE {ROLE} LOGIN")
    await ledger_rows(server.url, f'ALTER DATABASE "{name}" OWNER TO {ROLE}')
    await ledger_rows(admin_url, f"ALTER SCHEMA public OWNER TO {ROLE}")
    await ledger_rows(admin_url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return admin_url


async def pg_counters(database_url: str) -> dict[str, int]:
    """Commits in this database and rows written to its tables, so far."""
    commits = await ledger_rows(
        database_url,
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    rows = await ledger_rows(
        database_url,
        "SELECT coalesce(sum(n_tup_ins), 0) AS ins, coalesce(sum(n_tup_upd), 0) AS upd "
        "FROM pg_stat_user_tables",
    )
    return {
        "commits": int(commits[0]["xact_commit"]),
        "inserted": int(rows[0]["ins"]),
        "updated": int(rows[0]["upd"]),
    }


async def statements(database_url: str, role: str) -> Counter[str]:
    """Calls per normalised statement by `role` in this database (pg_stat_statements)."""
    rows = await ledger_rows(
        database_url,
        "SELECT query, calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "JOIN pg_roles r ON r.oid = s.userid WHERE d.datname = current_database() "
        "AND r.rolname = %s",
        (role,),
    )
    found: Counter[str] = Counter()
    for row in rows:
        found[" ".join(row["query"].split())[:90]] += int(row["calls"])
    return found


async def settle_stats() -> None:
    """Statistics reach the views after the backend reports them (at most every ~1 s)."""
    await anyio.sleep(1.5)


def transaction_control(query: str) -> bool:
    return query in ("BEGIN", "COMMIT", "ROLLBACK", "")


def periodic(query: str) -> bool:
    """The lease keeper's and the pool's own statements, not a task's."""
    return (
        query.startswith("UPDATE tasks SET lease_until")
        or query.startswith("WITH orphans")
        or query == "SELECT $1"
    )


async def ledger_work(
    emulator: EmulatorProcess, server: PostgresServer, root: Path, tasks: int
) -> None:
    """Statements, transactions and rows per task on one replica, for calls that wait for the
    video and for calls that return first (the video followed in the background)."""
    for mode, wait in (("waits for the video", 60.0), ("returns after 1 s", 1.0)):
        admin_url = await replica_database(server)
        replica_url = admin_url.replace("postgresql://postgres@", f"postgresql://{ROLE}@")
        async with fleet(
            emulator,
            replica_url,
            root / f"ledger-{int(wait)}",
            HAILUO_LOG_LEVEL="WARNING",
            HAILUO_LEASE_SECONDS="20",
        ) as replicas:
            (replica,) = await replicas.add(1)
            await settle_stats()
            before = await pg_counters(admin_url)
            queries_before = await statements(admin_url, ROLE)
            began = time.monotonic()
            async with anyio.create_task_group() as group:
                for index in range(tasks):
                    prompt = f"ledger work {mode} {index}: a kite over dunes"
                    group.start_soon(generate, replica, prompt, wait)
            with anyio.fail_after(120):
                while await ledger_rows(admin_url, f"SELECT task_id FROM tasks WHERE {UNFINISHED}"):
                    await anyio.sleep(0.2)
            elapsed = time.monotonic() - began
            await settle_stats()
            after = await pg_counters(admin_url)
            queries_after = await statements(admin_url, ROLE)
        delta = queries_after - queries_before
        own = Counter(
            {
                query: calls
                for query, calls in delta.items()
                if not periodic(query) and not transaction_control(query)
            }
        )
        keeper = sum(calls for query, calls in delta.items() if periodic(query))
        commits = delta["COMMIT"]
        print(
            f"  a call that {mode} ({tasks} tasks, {elapsed:.0f} s): "
            f"{sum(own.values()) / tasks:.1f} statements per task; the replica's commits "
            f"{commits / tasks:.1f} per task (the keeper's included; pg_stat_database counts "
            f"{(after['commits'] - before['commits']) / tasks:.1f} with the bench's own "
            f"reads); rows inserted {(after['inserted'] - before['inserted']) / tasks:.1f}, "
            f"updated {(after['updated'] - before['updated']) / tasks:.1f} per task (lease "
            f"renewals included); the keeper's own statements: {keeper} "
            f"({keeper / elapsed * 60:.0f} a minute)",
            flush=True,
        )
        for query, calls in own.most_common(16):
            print(f"      {calls / tasks:5.1f}  {query}")


async def takeovers(
    emulator: EmulatorProcess, server: PostgresServer, root: Path, rounds: int, lease_s: float
) -> list[float]:
    """Kill a replica that follows unfinished tasks; seconds until others hold them all."""
    database_url = server.new_database()
    measured: list[float] = []
    async with fleet(
        emulator,
        database_url,
        root / f"takeover-{lease_s:g}",
        HAILUO_LOG_LEVEL="WARNING",
        HAILUO_LEASE_SECONDS=str(lease_s),
    ) as replicas:
        await replicas.add(3)
        for round_ in range(rounds):
            victim = replicas.live[-1]
            async with mcp_client(victim.url) as client:
                for index in range(3):
                    ok(
                        await client.call_tool(
                            "generate_video",
                            {
                                "prompt": f"takeover {lease_s:g} {round_} {index}: gulls at sea",
                                "wait_seconds": 0.5,
                            },
                        )
                    )
            # Killed right after its creates: its leases have nearly all their time left (the
            # slow end; a replica killed later in a renewal period is taken over sooner).
            held = await ledger_rows(
                database_url,
                f"SELECT task_id FROM tasks WHERE lease_holder LIKE %s AND {UNFINISHED}",
                (holder_of(victim.pid),),
            )
            assert held, "the victim follows nothing"
            victim.kill()
            assert victim.killed_at is not None
            with anyio.fail_after(3 * lease_s + 30):
                while await ledger_rows(
                    database_url,
                    f"SELECT task_id FROM tasks WHERE lease_holder LIKE %s AND {UNFINISHED}",
                    (holder_of(victim.pid),),
                ):
                    await anyio.sleep(0.02)
            measured.append(time.monotonic() - victim.killed_at)
            print(
                f"  lease {lease_s:g} s, round {round_ + 1}: {len(held)} tasks taken over in "
                f"{measured[-1]:.2f} s",
                flush=True,
            )
            await replicas.add(1)
    return measured


def spread(values: list[float]) -> str:
    return (
        f"min {min(values):.1f} s, median {statistics.median(values):.1f} s, "
        f"max {max(values):.1f} s (n={len(values)})"
    )


async def run(args: argparse.Namespace) -> None:
    print(machine())
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    root = Path(tempfile.mkdtemp(prefix="hailuo-bench-replicas-"))
    with running_postgres() as server, emulator_process(SPEED) as emulator:
        await anyio.to_thread.run_sync(with_statements, server)
        if 1 in args.parts:
            print(
                f"\n1. throughput, {args.clients} concurrent clients, {args.rounds} blocks of "
                f"{args.seconds:g} s per fleet and tool"
            )
            figures = await throughput(
                emulator, server, root, args.clients, args.seconds, args.rounds
            )
            for tool, sizes in figures.items():
                one, three = statistics.median(sizes[1][0]), statistics.median(sizes[3][0])
                p50 = quantile(sizes[3][1], 0.5) / quantile(sizes[1][1], 0.5)
                print(
                    f"  {tool}: three replicas / one = {three / one:.2f}x calls/s, p50 {p50:.2f}x"
                )
        if 2 in args.parts:
            print(f"\n2. ledger work per task ({args.tasks} tasks each way, one replica)")
            await ledger_work(emulator, server, root, args.tasks)
        if 3 in args.parts:
            print(f"\n3. takeover after SIGKILL, {args.takeovers} rounds per lease")
            for lease_s in args.leases:
                measured = await takeovers(emulator, server, root, args.takeovers, lease_s)
                print(f"  lease {lease_s:g} s: {spread(measured)}")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    """Run the three parts and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--takeovers", type=int, default=5)
    parser.add_argument("--leases", type=float, nargs="+", default=[4.0, 20.0])
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    anyio.run(run, parser.parse_args())


if __name__ == "__main__":
    main()
