"""``write_pipelined`` on every backend: results read after the commit, and every kind of
error (the caller's, a statement's at a fetch or at the commit) rolls back and leaves the
connection usable."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest

from wirelab.db import DatabaseError, connect
from wirelab.db._sql import Conn
from wirelab.db._store import Store


class Refused(Exception):
    pass


@contextlib.asynccontextmanager
async def _store_with_bob(db_url: str) -> AsyncIterator[Store]:
    async with await connect(db_url) as opened:
        db = cast(Store, opened)
        await db.users.add_user("bob")
        yield db


@pytest.mark.asyncio
async def test_finish_reads_the_results_after_the_commit(db_url: str) -> None:
    async with _store_with_bob(db_url) as db:

        def write(conn: Conn) -> Callable[[], int]:
            conn.execute("UPDATE users SET quota_files = ? WHERE name = ?", (7, "bob"))
            cursor = conn.execute("SELECT quota_files FROM users WHERE name = ?", ("bob",))
            return lambda: int(cursor.fetchone()[0])

        assert await db.write_pipelined(write) == 7
        assert await _quota_files(db) == 7


@pytest.mark.asyncio
async def test_an_error_before_the_commit_rolls_everything_back(db_url: str) -> None:
    async with _store_with_bob(db_url) as db:

        def write(conn: Conn) -> Callable[[], None]:
            conn.execute("UPDATE users SET quota_files = ? WHERE name = ?", (9, "bob"))
            row = conn.execute("SELECT quota_files FROM users WHERE name = ?", ("bob",))
            if row.fetchone()[0] == 9:  # a fetch inside: seen, then refused
                raise Refused
            return lambda: None

        with pytest.raises(Refused):
            await db.write_pipelined(write)
        assert await _quota_files(db) is None
        # the connection went back clean: the next write works
        await db.write_pipelined(lambda conn: lambda: None)


@pytest.mark.asyncio
async def test_a_failing_statement_raises_and_changes_nothing(db_url: str) -> None:
    async with _store_with_bob(db_url) as db:

        def write(conn: Conn) -> Callable[[], None]:
            conn.execute("UPDATE users SET quota_files = ? WHERE name = ?", (3, "bob"))
            conn.execute("INSERT INTO users (name) VALUES (NULL)")  # NOT NULL: refused
            return lambda: None

        with pytest.raises(DatabaseError):
            await db.write_pipelined(write)
        assert await _quota_files(db) is None
        assert await db.write_pipelined(lambda conn: lambda: 1) == 1


async def _quota_files(db: Store) -> int | None:
    user = await db.users.get_user("bob")
    assert user is not None
    return user.quota_files


@pytest.mark.asyncio
async def test_an_error_read_inside_rolls_back_quietly(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement that fails where ``func`` fetches it: its own error comes out (so a
    deadlock is retried), the transaction is rolled back, and nothing warns about a
    connection returned in a failed transaction."""
    async with _store_with_bob(db_url) as db:

        def write(conn: Conn) -> Callable[[], None]:
            conn.execute("UPDATE users SET quota_files = ? WHERE name = ?", (4, "bob"))
            conn.execute("SELECT * FROM no_such_table").fetchone()
            return lambda: None

        with caplog.at_level(logging.WARNING), pytest.raises(DatabaseError, match="no_such_table"):
            await db.write_pipelined(write)
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert await _quota_files(db) is None
        assert await db.write_pipelined(lambda conn: lambda: 1) == 1
