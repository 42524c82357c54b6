"""One suite over both ledgers: every TaskLedger method means the same in SQLite and PostgreSQL.

Each test runs twice (`store` is parametrized): on a SQLite file in tmp_path and on a fresh
database of a real PostgreSQL server. Several ledger instances on one store play replicas.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from hailuo_mcp.ledger import LOCAL_OWNER
from hailuo_mcp.ledger.records import TaskTiming
from hailuo_mcp.models import Task, TaskStatus
from tests.ledger.conftest import Store
from tests.ledger.support import STARTED, complete, create, protocol_task

pytestmark = pytest.mark.anyio


async def test_a_created_task_reads_back_with_its_request_owner_and_price(store: Store) -> None:
    async with store.open() as ledger:
        await ledger.ping()
        await create(ledger, "t1", owner="alice", prompt="waves at dusk", duration=10)
        record = await ledger.get("t1")
    assert record is not None
    assert (record.task_id, record.status, record.origin, record.owner) == (
        "t1",
        TaskStatus.PENDING,
        "created",
        "alice",
    )
    assert (record.prompt, record.model, record.duration, record.resolution) == (
        "waves at dusk",
        "v2.3",
        10,
        768,
    )
    assert record.expand_prompt is True and record.file_name == "t1.mp4"
    assert record.estimate_usd is not None and record.estimate_usd > 0
    assert record.estimate_points is not None and record.estimate_points > 0
    assert record.created_at == pytest.approx(time.time(), abs=30)
    assert record.finished_at is None and record.video_path is None


async def test_a_write_under_way_completes_even_when_its_caller_is_cancelled(
    store: Store,
) -> None:
    snapshot = Task(task_id="t1", status=TaskStatus.RUNNING)
    async with store.open() as ledger:
        await ledger.ping()  # the tables exist before they are locked
        with store.writes_held() as free_writes, anyio.fail_after(30):
            async with anyio.create_task_group() as frees:
                async with anyio.create_task_group() as group:
                    group.start_soon(ledger.record_imported, snapshot)
                    await anyio.sleep(0.3)  # the write is waiting on the lock
                    group.cancel_scope.cancel()
                    frees.start_soon(free_soon, free_writes)
        record = await ledger.get("t1")
    assert record is not None and record.status == TaskStatus.RUNNING


async def free_soon(free: Callable[[], None]) -> None:
    await anyio.sleep(0.3)
    free()


async def test_attempt_ids_are_distinct_and_a_failed_attempt_makes_no_task(store: Store) -> None:
    async with store.open() as ledger:
        first = await ledger.record_attempt({"prompt": "a"})
        second = await ledger.record_attempt({"prompt": "b"}, owner="bob")
        await ledger.record_attempt_failed(first, "ambiguous_create", "no answer")
        assert second > first > 0
        assert await ledger.recent(10) == []


async def test_no_read_hands_one_owner_another_owners_rows(store: Store) -> None:
    async with store.open() as ledger:
        await create(ledger, "alice-1", owner="alice")
        await create(ledger, "bob-1", owner="bob")
        await create(ledger, "local-1")
        await ledger.record_protocol_task(protocol_task("alice-1", "p-alice", owner="alice"))
        await ledger.record_protocol_task(protocol_task("bob-1", "p-bob", owner="bob"))

        assert await ledger.get("bob-1", owner="alice") is None
        alice = await ledger.get("alice-1", owner="alice")
        assert alice is not None and alice.owner == "alice"
        assert [r.task_id for r in await ledger.recent(10, owner="alice")] == ["alice-1"]
        assert [r.task_id for r in await ledger.created_since(0, owner="bob")] == ["bob-1"]
        assert [r.task_id for r in await ledger.recent(10, owner=LOCAL_OWNER)] == ["local-1"]
        pending = TaskStatus.PENDING
        assert [r.task_id for r in await ledger.recent(10, pending, owner="bob")] == ["bob-1"]
        assert await ledger.protocol_task("p-bob", owner="alice") is None
        mine = await ledger.protocol_task("p-alice", owner="alice")
        assert mine is not None and mine.owner == "alice"
        assert [p.id for p in await ledger.protocol_tasks(10, owner="bob")] == ["p-bob"]
        assert await ledger.protocol_tasks(10, owner="carol") == []

        # owner=None is the server's own view: every owner.
        assert {r.task_id for r in await ledger.recent(10)} == {"alice-1", "bob-1", "local-1"}
        assert {r.task_id for r in await ledger.created_since(0)} == {
            "alice-1",
            "bob-1",
            "local-1",
        }
        assert await ledger.get("bob-1") is not None
        assert {p.id for p in await ledger.protocol_tasks(10)} == {"p-alice", "p-bob"}


async def test_record_imported_never_overwrites_a_recorded_task(store: Store) -> None:
    snapshot = Task(
        task_id="t1",
        status=TaskStatus.RUNNING,
        input={"prompt": "someone else's", "duration": 10, "expand_prompt": False},
    )
    async with store.open() as ledger:
        await create(ledger, "t1", owner="alice", prompt="mine")
        assert await ledger.record_imported(snapshot, owner="mallory") is False
        kept = await ledger.get("t1")

        assert await ledger.record_imported(snapshot.model_copy(update={"task_id": "t2"})) is True
        assert (
            await ledger.record_imported(
                snapshot.model_copy(update={"task_id": "t2", "status": TaskStatus.FAILED}),
                owner="mallory",
            )
            is False
        )
        imported = await ledger.get("t2")
    assert kept is not None
    assert (kept.owner, kept.origin, kept.prompt, kept.status) == (
        "alice",
        "created",
        "mine",
        TaskStatus.PENDING,
    )
    assert imported is not None
    assert (imported.owner, imported.origin, imported.status) == (
        LOCAL_OWNER,
        "imported",
        TaskStatus.RUNNING,
    )
    assert (imported.prompt, imported.duration, imported.expand_prompt) == (
        "someone else's",
        10,
        False,
    )


async def test_snapshots_saves_and_failures_are_recorded(store: Store) -> None:
    async with store.open() as ledger:
        await create(ledger, "done")
        await complete(ledger, "done", queue_s=3.0, generation_s=60.0)
        await ledger.record_save_failed("done", "download_failed", "404")
        failed_save = await ledger.get("done")
        await ledger.record_saved("done", Path("/videos/done.mp4"))
        saved = await ledger.get("done")

        await create(ledger, "bad")
        await ledger.record_seen(
            Task(task_id="bad", status=TaskStatus.FAILED, error_message="nsfw")
        )
        bad = await ledger.get("bad")
    assert failed_save is not None and failed_save.error_kind == "download_failed"
    assert saved is not None
    assert saved.status == TaskStatus.COMPLETED and saved.video_path == "/videos/done.mp4"
    assert saved.video_url == "https://cdn.example/done.mp4"
    assert saved.consumed_points == 1_900_000 and saved.finished_at is not None
    assert (saved.error_kind, saved.error_message) == (None, None)
    assert saved.generation_seconds == 60.0
    assert saved.upstream_started_at == STARTED.replace(second=3)
    assert bad is not None
    assert (bad.status, bad.error_kind, bad.error_message) == (
        TaskStatus.FAILED,
        "task_failed",
        "nsfw",
    )


async def test_a_save_is_recorded_only_over_the_path_its_saver_saw(store: Store) -> None:
    async with store.open() as ledger:
        await create(ledger, "done")
        await complete(ledger, "done")
        first = await ledger.record_saved("done", Path("/v/first.mp4"))
        # A second saver that also saw no path loses: the first record stands.
        late = await ledger.record_saved("done", Path("/v/second.mp4"))
        kept = await ledger.get("done")
        # A saver that saw the first path (its file since deleted) replaces it.
        again = await ledger.record_saved("done", Path("/v/again.mp4"), replacing="/v/first.mp4")
        replaced = await ledger.get("done")
        unknown = await ledger.record_saved("no-such-task", Path("/v/x.mp4"))
    assert (first, late, again, unknown) == (True, False, True, False)
    assert kept is not None and kept.video_path == "/v/first.mp4"
    assert replaced is not None and replaced.video_path == "/v/again.mp4"


async def test_recent_is_newest_first_limited_and_filtered_by_status(store: Store) -> None:
    async with store.open() as ledger:
        for name in ("a", "b", "c", "d"):
            await create(ledger, name)
        await complete(ledger, "b")
        assert [r.task_id for r in await ledger.recent(3)] == ["d", "c", "b"]
        completed = await ledger.recent(10, TaskStatus.COMPLETED)
        assert [r.task_id for r in completed] == ["b"]
        since = (await ledger.get("c")).created_at  # type: ignore[union-attr]
        assert [r.task_id for r in await ledger.created_since(since)] == ["c", "d"]


async def test_unfinished_is_what_still_needs_following_and_record_lost_ends_it(
    store: Store,
) -> None:
    async with store.open() as ledger:
        await create(ledger, "queued")
        await create(ledger, "running", status=TaskStatus.RUNNING)
        await create(ledger, "unsaved")
        await complete(ledger, "unsaved")
        await create(ledger, "saved")
        await complete(ledger, "saved")
        await ledger.record_saved("saved", Path("/v/saved.mp4"))
        await create(ledger, "failed")
        await ledger.record_seen(Task(task_id="failed", status=TaskStatus.FAILED))

        unfinished = [r.task_id for r in await ledger.unfinished(3600)]
        assert unfinished == ["queued", "running", "unsaved"]
        await anyio.sleep(0.05)
        assert await ledger.unfinished(0.01) == []  # all older than the window

        assert await ledger.record_lost("the server was restarted") == 2
        lost = await ledger.get("queued")
        assert lost is not None
        assert (lost.status, lost.error_kind, lost.error_message) == (
            TaskStatus.CANCELLED,
            "lost",
            "the server was restarted",
        )
        assert [r.task_id for r in await ledger.unfinished(3600)] == ["unsaved"]
        assert await ledger.record_lost("again") == 0


async def test_completed_timings_are_per_kind_newest_first(store: Store) -> None:
    async with store.open() as ledger:
        for i, generation in enumerate((50.0, 60.0, 70.0)):
            await create(ledger, f"six-{i}")
            await complete(ledger, f"six-{i}", queue_s=2.0, generation_s=generation)
        await create(ledger, "ten", duration=10)
        await complete(ledger, "ten", generation_s=200.0)
        await create(ledger, "running")
        timings = await ledger.completed_timings("v2.3", 6, 768, limit=2)
        ten = await ledger.completed_timings("v2.3", 10, 768, limit=10)
        none = await ledger.completed_timings("v2.3-fast", 6, 768, limit=10)
    assert timings == [TaskTiming(2.0, 70.0), TaskTiming(2.0, 60.0)]
    assert ten == [TaskTiming(2.0, 200.0)] and none == []


async def test_protocol_tasks_page_newest_first_and_never_leave_an_end(store: Store) -> None:
    base = time.time()
    async with store.open() as ledger:
        await create(ledger, "t1")
        for i in range(5):
            owner = "alice" if i % 2 == 0 else "bob"
            await ledger.record_protocol_task(
                protocol_task("t1", f"p{i}", owner=owner, at=base + i, ttl_ms=1000 * (i + 1))
            )
        page = await ledger.protocol_tasks(2)
        assert [p.id for p in page] == ["p4", "p3"]
        rest = await ledger.protocol_tasks(10, after=(page[-1].created_at, page[-1].id))
        assert [p.id for p in rest] == ["p2", "p1", "p0"]
        alice = await ledger.protocol_tasks(1, owner="alice", after=(base + 4, "p4"))
        assert [p.id for p in alice] == ["p2"]

        result = {"content": [], "structuredContent": {"task_id": "t1"}}
        assert await ledger.record_protocol_outcome("p0", "completed", result=result) is True
        assert await ledger.record_protocol_outcome("p0", "failed", error={"code": 1}) is False
        assert await ledger.record_protocol_outcome("p1", "working", status_message="generating")
        done = await ledger.protocol_task("p0")
        working = await ledger.protocol_task("p1")
        assert done is not None and working is not None
        assert (done.status, done.result, done.error) == ("completed", result, None)
        assert done.warnings == ["a warning"] and done.tool == "generate_video"
        assert (working.status, working.status_message) == ("working", "generating")

        # ttl of p_i is i+1 s from base+i: all but p4 (ends at base+9) end before base+8.5.
        assert await ledger.forget_protocol_tasks(base + 8.5) == 4
        assert [p.id for p in await ledger.protocol_tasks(10)] == ["p4"]
        assert await ledger.get("t1") is not None  # the PiAPI task stays


async def test_a_lease_belongs_to_one_replica_until_released(store: Store) -> None:
    async with store.open("replica-a") as a, store.open("replica-b") as b:
        assert (a.holder, b.holder) == ("replica-a", "replica-b")
        await create(a, "t1")  # leased to its creator
        await create(a, "t2")
        assert await b.claim("t1") is False
        assert await a.claim("t1") is True  # keeping it
        assert await a.renew(["t1", "t2", "unknown"]) == {"t1", "t2"}
        assert await b.renew(["t1", "t2"]) == set()
        await b.release("t1")  # not b's to give up: nothing changes
        assert await b.claim("t1") is False

        await a.release("t1")
        assert await b.claim("t1") is True
        assert await a.claim("t1") is False
        assert await a.renew(["t1", "t2"]) == {"t2"}
        assert await a.claim("nobody-knows") is False
        assert await a.renew([]) == set()


async def test_an_imported_task_is_leased_to_the_replica_that_saw_it(store: Store) -> None:
    async with store.open("replica-a") as a, store.open("replica-b") as b:
        assert await a.record_imported(Task(task_id="t1", status=TaskStatus.RUNNING))
        assert await b.record_imported(Task(task_id="t1", status=TaskStatus.RUNNING)) is False
        assert await b.claim("t1") is False
        assert await a.renew(["t1"]) == {"t1"}


async def test_a_lease_not_renewed_expires_after_lease_s(store: Store) -> None:
    async with store.open("replica-a", lease_s=1.0) as a, store.open("replica-b") as b:
        await create(a, "t1")
        await create(a, "t2")
        assert await b.claim("t1") is False
        assert await b.claim_orphans(3600, 10) == []
        await anyio.sleep(1.5)  # a real wait: the lease is the store's clock, not ours
        assert await a.renew(["t2"]) == {"t2"}  # expired, but nobody took it: still a's
        assert [r.task_id for r in await b.claim_orphans(3600, 10)] == ["t1"]
        assert await a.renew(["t1"]) == set()  # a lost it
        assert await a.claim("t1") is False


async def test_claim_orphans_takes_free_unfinished_recent_tasks_only(store: Store) -> None:
    async with store.open("replica-a") as a, store.open("replica-b") as b:
        for name in ("o1", "o2", "o3", "held", "done"):
            await create(a, name)
        await complete(a, "done")
        await a.record_saved("done", Path("/v/done.mp4"))
        for name in ("o1", "o2", "o3", "done"):
            await a.release(name)

        first = await b.claim_orphans(3600, 2)
        second = await b.claim_orphans(3600, 10)
        assert [r.task_id for r in first] == ["o1", "o2"]
        assert [r.task_id for r in second] == ["o3"]
        assert await b.claim_orphans(3600, 10) == []  # held by b now, not orphans
        assert await a.claim_orphans(3600, 10) == []  # b's are live, "held" is a's own
        assert await b.renew(["o1", "o2", "o3", "held"]) == {"o1", "o2", "o3"}
        await b.release("o1")
        await anyio.sleep(0.05)
        assert await a.claim_orphans(0.01, 10) == []  # too old for that window


async def test_concurrent_claim_orphans_never_hand_one_task_to_two_replicas(store: Store) -> None:
    names = [f"t{i:02}" for i in range(30)]
    async with store.open("creator") as creator:
        for name in names:
            await create(creator, name)
            await creator.release(name)
    claimed: dict[str, list[str]] = {}
    async with (
        store.open("r0") as r0,
        store.open("r1") as r1,
        store.open("r2") as r2,
        store.open("r3") as r3,
    ):

        async def take(replica_name: str, replica: object) -> None:
            for _ in range(3):
                got = await replica.claim_orphans(3600, 4)  # type: ignore[attr-defined]
                claimed.setdefault(replica_name, []).extend(r.task_id for r in got)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for replica in (r0, r1, r2, r3):
                    group.start_soon(take, replica.holder, replica)
        everyone = [task_id for got in claimed.values() for task_id in got]
        assert len(everyone) == len(set(everyone)) == 30  # 4 replicas x 3 x 4 = 48 asked for
        assert sorted(everyone) == names
        for replica in (r0, r1, r2, r3):
            mine = claimed.get(replica.holder, [])
            assert await replica.renew(names) == set(mine)
