"""The PostgreSQL ledger's schema, as numbered migrations applied in order.

`schema_migrations` records each applied version and when. `migrate` runs in one transaction
under a transaction-level advisory lock, so replicas starting together apply each migration
once and none reads a half-made schema. A database already at a version newer than this code
knows is refused: an older replica must not write rows a newer schema means otherwise.
Add a migration by appending to `MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

from typing import Any, Final

from psycopg import AsyncConnection

from hailuo_mcp.errors import StorageError

# Times: created/updated/finished are epoch seconds from the replica that wrote them (as in the
# SQLite file, and what the protocol's epochs compare with); upstream_* are PiAPI's own stamps;
# lease_until is the database's clock only, so replicas' clocks never decide a lease.
_V1: Final = """
CREATE TABLE tasks (
    task_id text PRIMARY KEY,
    status text NOT NULL,
    origin text NOT NULL,
    owner text NOT NULL DEFAULT 'local',
    prompt text,
    model text,
    duration integer,
    resolution integer,
    image_url text,
    image_source text,
    file_name text,
    expand_prompt boolean,
    estimate_usd double precision,
    estimate_points bigint,
    consumed_points bigint,
    video_url text,
    video_path text,
    error_kind text,
    error_message text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    finished_at double precision,
    upstream_created_at timestamptz,
    upstream_started_at timestamptz,
    upstream_ended_at timestamptz,
    lease_holder text,
    lease_until timestamptz
);
CREATE INDEX tasks_by_created ON tasks (created_at DESC);
CREATE INDEX tasks_by_owner ON tasks (owner, created_at DESC);
CREATE INDEX tasks_unfinished ON tasks (created_at)
    WHERE status NOT IN ('completed', 'failed', 'cancelled')
       OR (status = 'completed' AND video_path IS NULL AND video_url IS NOT NULL);
CREATE INDEX tasks_by_kind ON tasks (model, duration, resolution, created_at DESC)
    WHERE status = 'completed';

CREATE TABLE create_attempts (
    attempt_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sent_at double precision NOT NULL,
    request_json jsonb NOT NULL,
    outcome text NOT NULL,
    task_id text,
    message text,
    owner text NOT NULL DEFAULT 'local'
);

CREATE TABLE protocol_tasks (
    id text PRIMARY KEY,
    task_id text NOT NULL,
    owner text NOT NULL DEFAULT 'local',
    tool text NOT NULL,
    protocol_version text NOT NULL,
    status text NOT NULL,
    status_message text,
    ttl_ms bigint,
    warnings jsonb NOT NULL DEFAULT '[]',
    result jsonb,
    error jsonb,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE INDEX protocol_tasks_by_created ON protocol_tasks (created_at DESC, id DESC);
CREATE INDEX protocol_tasks_by_owner ON protocol_tasks (owner, created_at DESC, id DESC);
CREATE INDEX protocol_tasks_by_task ON protocol_tasks (task_id);
"""

# (version, SQL), in order; versions are 1, 2, 3, ... with no gaps.
MIGRATIONS: Final[tuple[tuple[int, str], ...]] = ((1, _V1),)
LATEST: Final = MIGRATIONS[-1][0]

# pg_advisory_xact_lock's key for "the ledger's schema is being changed" ("hailuo" in hex).
_LOCK_KEY: Final = 0x6861696C756F


async def migrate(conn: AsyncConnection[Any]) -> list[int]:
    """Bring the schema to LATEST in one transaction; returns the versions applied now.

    Raises:
        StorageError: the database is at a version newer than LATEST.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        row = await cursor.fetchone()
        current = int(row[0]) if row is not None else 0
        if current > LATEST:
            raise StorageError(
                f"The ledger database is at schema version {current}, newer than this "
                f"hailuo-mcp knows (version {LATEST}). Upgrade hailuo-mcp on this replica, or "
                "point HAILUO_DATABASE_URL at another database."
            )
        applied: list[int] = []
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            await conn.execute(statements)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied.append(version)
        return applied
