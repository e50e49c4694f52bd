"""Group commit of SQLite writes: concurrent writes share a commit, each is still atomic
on its own, and every call still takes effect in submission order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from wirelab.db import DatabaseError
from wirelab.db._sqlite import SQLiteDatabase
from wirelab.db._sqlite_group import MAX_GROUP


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[SQLiteDatabase]:
    database = await SQLiteDatabase.open(str(tmp_path / "g.db"))
    await database.run(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    try:
        yield database
    finally:
        await database.close()


def _insert(n: int, fail: bool = False) -> Callable[[sqlite3.Connection], int]:
    def func(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        if fail:
            raise ValueError(f"write {n} fails after its insert")
        return n

    return func


async def _rows(db: SQLiteDatabase) -> list[int]:
    return await db.run(lambda c: [r[0] for r in c.execute("SELECT n FROM t ORDER BY n")])


@pytest.mark.asyncio
async def test_concurrent_writes_share_commits(db: SQLiteDatabase) -> None:
    commits: list[str] = []
    await db.run(
        lambda c: c.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    )
    results = await asyncio.gather(*(db.write(_insert(n)) for n in range(30)))
    assert results == list(range(30))
    assert await _rows(db) == list(range(30))
    assert 1 <= len(commits) < 30


@pytest.mark.asyncio
async def test_a_failing_write_is_rolled_back_alone(db: SQLiteDatabase) -> None:
    results = await asyncio.gather(
        *(db.write(_insert(n, fail=n == 5)) for n in range(10)),
        return_exceptions=True,
    )
    assert isinstance(results[5], ValueError)
    assert [r for i, r in enumerate(results) if i != 5] == [n for n in range(10) if n != 5]
    assert await _rows(db) == [n for n in range(10) if n != 5]


@pytest.mark.asyncio
async def test_calls_take_effect_in_submission_order(db: SQLiteDatabase) -> None:
    count = "SELECT count(*) FROM t"
    seen: list[int] = await asyncio.gather(
        db.write(_insert(1)),
        db.run(lambda c: c.execute(count).fetchone()[0]),
        db.write(_insert(2)),
        db.write(_insert(3)),
        db.run(lambda c: c.execute(count).fetchone()[0]),
    )
    # A read sees exactly the writes submitted before it: no later write joined their group.
    assert seen == [1, 1, 2, 3, 3]


@pytest.mark.asyncio
async def test_a_read_behind_a_full_group_sees_no_later_write(db: SQLiteDatabase) -> None:
    """More writes than one group holds leave flush jobs with nothing of their own to do;
    such a job must not take a write submitted after a read that waits behind it."""
    gate = threading.Event()
    blocked = asyncio.ensure_future(db.run(lambda c: gate.wait(10)))
    first = [asyncio.ensure_future(db.write(_insert(n))) for n in range(MAX_GROUP + 6)]
    read = asyncio.ensure_future(
        db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
    )
    late = asyncio.ensure_future(db.write(_insert(1000)))
    await asyncio.sleep(0)  # every call above is now queued behind the gate, in this order
    gate.set()
    await asyncio.gather(blocked, *first, late)
    assert await read == MAX_GROUP + 6
    assert (await _rows(db))[-1] == 1000


@pytest.mark.asyncio
async def test_a_concurrent_read_waits_for_no_commit(db: SQLiteDatabase) -> None:
    """``read_concurrent`` (a request's token) runs beside the writer: it answers while the
    database thread is busy, sees every write that returned, writes nothing, and does not
    split the group of the writes queued around it."""
    count = "SELECT count(*) FROM t"
    await db.write(_insert(1))
    gate = threading.Event()
    blocked = asyncio.ensure_future(db.run(lambda c: gate.wait(10)))
    queued = [asyncio.ensure_future(db.write(_insert(n))) for n in (2, 3)]
    try:
        seen = await asyncio.wait_for(
            db.read_concurrent(lambda c: c.execute(count).fetchone()[0]), 5
        )
        assert seen == 1  # the returned write; the queued ones are not committed yet
        with pytest.raises(DatabaseError, match="readonly"):
            await db.read_concurrent(lambda c: c.execute("INSERT INTO t VALUES (9)"))
    finally:
        gate.set()
    await asyncio.gather(blocked, *queued)
    assert await db.read_concurrent(lambda c: c.execute(count).fetchone()[0]) == 3


@pytest.mark.asyncio
async def test_a_concurrent_read_of_a_memory_database_is_a_plain_read() -> None:
    database = await SQLiteDatabase.open(":memory:")
    try:
        await database.write(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
        await database.write(_insert(5))
        assert await database.read_concurrent(
            lambda c: c.execute("SELECT n FROM t").fetchall()
        ) == [(5,)]
    finally:
        await database.close()
