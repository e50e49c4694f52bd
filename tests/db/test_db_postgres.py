"""The PostgreSQL backend: migrations and ``upgrade``, refusing an old or newer schema,
error translation. (Everything else runs on both backends: see ``db_url``.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from wirelab.db import (
    SCHEMA_VERSION,
    DatabaseError,
    SchemaVersionError,
    check_schema,
    connect,
    upgrade,
)
from wirelab.db._migrations import MIGRATIONS
from wirelab.db._pg_schema import current_version, migrate, pg_ddl
from wirelab.db._postgres import PostgresDatabase, display_url

pytestmark = pytest.mark.asyncio


def raw(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


async def test_an_empty_database_is_refused_until_upgraded(
    postgres_factory: Callable[..., str],
) -> None:
    url = postgres_factory(migrated=False)
    for attempt in (connect(url), check_schema(url)):
        with pytest.raises(SchemaVersionError, match=r"version 0 is older.*'wirelab db upgrade'"):
            await attempt
    assert await upgrade(url) == (0, SCHEMA_VERSION)
    assert await upgrade(url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    await check_schema(url)
    async with await connect(url) as db:
        assert isinstance(db, PostgresDatabase)
        assert db.schema_version == SCHEMA_VERSION
        await db.users.add_user("alice")


async def test_an_older_schema_is_refused_and_upgraded_keeping_data(
    postgres_factory: Callable[..., str],
) -> None:
    url = postgres_factory(migrated=False)
    with raw(url) as conn:
        assert migrate(conn, MIGRATIONS[:3]) == 3
        conn.execute(
            "INSERT INTO relay_uploads VALUES"
            " ('u1', 'alice', 'bob', 'n', 'text/plain', NULL, 5, 'ab', 1.0, 2.0)"
        )
    with pytest.raises(SchemaVersionError, match="version 3 is older"):
        await connect(url)
    assert await upgrade(url) == (3, SCHEMA_VERSION)
    with raw(url) as conn:
        row = conn.execute("SELECT id, sha256, state FROM relay_uploads").fetchone()
    assert row == ("u1", "ab", "receiving")


async def test_concurrent_upgrades_apply_each_migration_once(
    postgres_factory: Callable[..., str],
) -> None:
    url = postgres_factory(migrated=False)
    results = await asyncio.gather(*(upgrade(url) for _ in range(4)))
    assert {after for _, after in results} == {SCHEMA_VERSION}
    with raw(url) as conn:
        assert current_version(conn) == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)


async def test_a_failing_migration_rolls_back(postgres_factory: Callable[..., str]) -> None:
    url = postgres_factory()
    broken = (*MIGRATIONS, "CREATE TABLE half (x INTEGER);\nCREATE TABLE users (z INTEGER);")
    with raw(url) as conn:
        with pytest.raises(psycopg.errors.DuplicateTable):
            migrate(conn, broken)
        assert current_version(conn) == SCHEMA_VERSION
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)
        extra = (*MIGRATIONS, "CREATE TABLE b (y INTEGER);")
        assert migrate(conn, extra) == SCHEMA_VERSION + 1


async def test_a_newer_database_is_refused(postgres_factory: Callable[..., str]) -> None:
    url = postgres_factory()
    with raw(url) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 5,))
    with pytest.raises(SchemaVersionError, match="newer than this wirelab"):
        await connect(url)
    with pytest.raises(SchemaVersionError, match="newer than this wirelab"):
        await upgrade(url)


async def test_types_are_postgresql_ones() -> None:
    ddl = pg_ddl("CREATE TABLE t (\n  seq INTEGER PRIMARY KEY AUTOINCREMENT,\n  n INTEGER,\n"
                 "  r REAL NOT NULL,\n  b BLOB\n) STRICT;")  # fmt: skip
    assert "GENERATED ALWAYS AS IDENTITY PRIMARY KEY" in ddl
    assert "n BIGINT," in ddl
    assert "r DOUBLE PRECISION NOT NULL" in ddl
    assert "b BYTEA" in ddl
    assert "STRICT" not in ddl


async def test_sizes_beyond_32_bits_fit(postgres_factory: Callable[..., str]) -> None:
    from wirelab.db import QuotaDefaults

    async with await connect(postgres_factory()) as db:
        await db.users.add_user("bob")
        big = 5 * 2**40
        used = await db.relay.reserve([("k", big)], "bob", 1.0, QuotaDefaults(2 * big, 10))
        assert used.used_bytes == 0
        used = await db.relay.reserve([("k2", 1)], "bob", 1.0, QuotaDefaults(2 * big, 10))
        assert used.used_bytes == big


async def test_errors_are_translated_without_the_password(
    postgres_factory: Callable[..., str],
) -> None:
    url = postgres_factory()
    async with await connect(url) as db:
        assert isinstance(db, PostgresDatabase)
        with pytest.raises(DatabaseError, match="nope") as info:
            await db.run(lambda conn: conn.execute("SELECT * FROM nope"))
        assert isinstance(info.value.__cause__, psycopg.Error)
    secret = url.replace("postgres@", "postgres:s3cret@")
    assert "s3cret" not in display_url(secret)
    with pytest.raises(DatabaseError, match="cannot open database") as refused:
        await connect("postgresql://postgres:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in str(refused.value)


async def _backends_used(db: Any, calls: int) -> set[int]:
    """The PostgreSQL backend pids that ``calls`` concurrent half-second calls ran on."""

    def one(conn: Any) -> int:
        row = conn.execute("SELECT pg_backend_pid(), pg_sleep(0.5)").fetchone()
        return int(row[0])

    return set(await asyncio.gather(*(db.run(one) for _ in range(calls))))


async def test_the_pool_size_caps_the_connections_of_a_process(
    postgres_factory: Callable[..., str],
) -> None:
    url = postgres_factory()
    async with await connect(url, pool_size=2) as db:
        assert len(await _backends_used(db, 6)) <= 2
    async with await connect(url, pool_size=4) as db:
        used = await _backends_used(db, 8)
        assert 2 < len(used) <= 4  # the pool grows past 2 when calls wait, up to its size


@pytest.mark.parametrize("size", [0, -1, 1001, True, 2.5])
async def test_a_bad_pool_size_is_refused_before_connecting(size: Any) -> None:
    from wirelab import UsageError
    from wirelab.server import ServerConfig

    # Nothing listens on port 1: a size checked after connecting would fail differently.
    with pytest.raises(UsageError, match=r"pool size must be a whole number from 1 to 1000"):
        await connect("postgresql://postgres@127.0.0.1:1/none", pool_size=size)
    with pytest.raises(UsageError, match=r"pool size must be a whole number from 1 to 1000"):
        ServerConfig(database_pool_size=size)
