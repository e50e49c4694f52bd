"""The metadata store: URLs, migrations and connection settings (SQLite); users and
concurrency (every backend: see ``db_url``)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest

from wirelab import UsageError
from wirelab.auth import InvalidUserName, UserExistsError, UserNotFoundError, generate_token
from wirelab.db import (
    SCHEMA_VERSION,
    Database,
    DatabaseError,
    SchemaVersionError,
    User,
    connect,
    sqlite_url,
)
from wirelab.db._migrations import MIGRATIONS, migrate
from wirelab.db._sqlite import SQLiteDatabase


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to inspect the file behind the store's back."""
    return sqlite3.connect(path, isolation_level=None)


def pragma(path: Path, name: str) -> object:
    conn = raw(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def files_contain(folder: Path, secrets: list[str]) -> bool:
    """Whether any file in ``folder`` holds any of ``secrets`` in its bytes."""
    files = [p for p in folder.iterdir() if p.is_file()]
    assert files
    return any(s.encode() in f.read_bytes() for f in files for s in secrets)


class TestUrls:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("mysql://localhost/wirelab", "unknown database scheme 'mysql'"),
            ("MySQL://localhost/wirelab", "unknown database scheme 'mysql'"),
            ("redis://x", "unknown database scheme 'redis'"),
            ("wirelab.db", "not a database URL"),
            ("://x", "not a database URL"),
            ("sqlite:/x.db", "not a database URL"),
            ("sqlite://host/x.db", "invalid SQLite URL"),
            ("sqlite://", "invalid SQLite URL"),
            ("sqlite:///", "invalid SQLite URL"),
        ],
    )
    @pytest.mark.asyncio
    async def test_refused(self, url: str, message: str) -> None:
        with pytest.raises(UsageError, match=message):
            await connect(url)

    @pytest.mark.asyncio
    async def test_unopenable_file(self, tmp_path: Path) -> None:
        with pytest.raises(DatabaseError, match="cannot open database"):
            await connect(sqlite_url(tmp_path / "missing-dir" / "w.db"))

    def test_sqlite_url(self, tmp_path: Path) -> None:
        assert sqlite_url("w.db") == "sqlite:///w.db"
        assert sqlite_url(tmp_path / "w.db").startswith("sqlite:////")

    @pytest.mark.asyncio
    async def test_relative_path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        async with await connect("sqlite:///rel.db") as db:
            await db.users.add_user("alice")
        assert (tmp_path / "rel.db").is_file()

    @pytest.mark.asyncio
    async def test_memory(self) -> None:
        async with await connect("sqlite:///:memory:") as db:
            _, token = await db.users.add_user("alice")
            user = await db.users.get_user_by_token(token)
            assert user is not None
            assert user.name == "alice"


class TestMigrations:
    @pytest.mark.asyncio
    async def test_from_empty(self, tmp_path: Path) -> None:
        path = tmp_path / "w.db"
        async with await connect(sqlite_url(path)) as db:
            assert db.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        assert pragma(path, "user_version") == SCHEMA_VERSION
        conn = raw(path)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        conn.close()
        assert "users" in tables

    @pytest.mark.asyncio
    async def test_rerun_is_idempotent_and_keeps_data(self, tmp_path: Path) -> None:
        url = sqlite_url(tmp_path / "w.db")
        async with await connect(url) as db:
            await db.users.add_user("alice")
        for _ in range(2):
            async with await connect(url) as db:
                assert db.schema_version == SCHEMA_VERSION
                assert [u.name for u in await db.users.list_users()] == ["alice"]
        conn = raw(tmp_path / "w.db")
        assert migrate(conn) == SCHEMA_VERSION
        assert migrate(conn) == SCHEMA_VERSION
        conn.close()

    def test_new_migration_applies_on_top(self, tmp_path: Path) -> None:
        conn = raw(tmp_path / "w.db")
        assert migrate(conn) == SCHEMA_VERSION
        extra = (*MIGRATIONS, "CREATE TABLE a (x INTEGER);\nCREATE TABLE b (y INTEGER);")
        assert migrate(conn, extra) == SCHEMA_VERSION + 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        conn.execute("INSERT INTO b VALUES (1)")
        conn.close()

    def test_failing_migration_rolls_back(self, tmp_path: Path) -> None:
        conn = raw(tmp_path / "w.db")
        broken = (*MIGRATIONS, "CREATE TABLE half (x INTEGER);\nCREATE TABLE users (z);")
        with pytest.raises(sqlite3.OperationalError, match="already exists"):
            migrate(conn, broken)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT name FROM sqlite_schema WHERE name='half'").fetchone() is None
        assert not conn.in_transaction
        conn.close()

    @pytest.mark.asyncio
    async def test_newer_database_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "w.db"
        conn = raw(path)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
        conn.close()
        with pytest.raises(SchemaVersionError, match="newer than this wirelab"):
            await connect(sqlite_url(path))


class TestConnection:
    @pytest.mark.asyncio
    async def test_settings(self, tmp_path: Path) -> None:
        path = tmp_path / "w.db"
        async with await connect(sqlite_url(path)) as db:
            assert isinstance(db, SQLiteDatabase)

            def settings(conn: sqlite3.Connection) -> list[object]:
                names = ["journal_mode", "synchronous", "foreign_keys", "busy_timeout"]
                return [conn.execute(f"PRAGMA {n}").fetchone()[0] for n in names]

            assert await db.run(settings) == ["wal", 2, 1, 5000]
            assert pragma(path, "journal_mode") == "wal"

    @pytest.mark.asyncio
    async def test_closed(self, db_url: str) -> None:
        db = await connect(db_url)
        await db.close()
        await db.close()
        with pytest.raises(UsageError, match="is closed"):
            await db.users.list_users()

    @pytest.mark.asyncio
    async def test_sqlite_errors_are_translated(self, tmp_path: Path) -> None:
        async with await connect(sqlite_url(tmp_path / "w.db")) as db:
            assert isinstance(db, SQLiteDatabase)
            with pytest.raises(DatabaseError, match="no such table") as info:
                await db.run(lambda conn: conn.execute("SELECT * FROM nope"))
            assert isinstance(info.value.__cause__, sqlite3.Error)


class TestUsers:
    @pytest.mark.asyncio
    async def test_crud(self, db_url: str) -> None:
        async with await connect(db_url) as db:
            alice, alice_token = await db.users.add_user("alice")
            _, bob_token = await db.users.add_user("bob")
            assert isinstance(alice, User)
            assert alice.name == "alice"
            assert alice.created_at.tzinfo is not None
            assert alice.token_issued_at == alice.created_at
            assert alice_token != bob_token
            assert await db.users.get_user_by_token(alice_token) == alice
            assert await db.users.get_user("alice") == alice
            assert await db.users.get_user("carol") is None
            assert [u.name for u in await db.users.list_users()] == ["alice", "bob"]
            await db.users.remove_user("alice")
            assert await db.users.get_user_by_token(alice_token) is None
            assert [u.name for u in await db.users.list_users()] == ["bob"]
            with pytest.raises(UserNotFoundError, match="'alice'"):
                await db.users.remove_user("alice")

    @pytest.mark.asyncio
    async def test_duplicate_and_invalid_names(self, db_url: str) -> None:
        async with await connect(db_url) as db:
            _, token = await db.users.add_user("alice")
            with pytest.raises(UserExistsError, match="'alice' already exists"):
                await db.users.add_user("alice")
            with pytest.raises(InvalidUserName):
                await db.users.add_user("Alice")
            assert [u.name for u in await db.users.list_users()] == ["alice"]
            user = await db.users.get_user_by_token(token)
            assert user is not None
            assert user.name == "alice"

    @pytest.mark.asyncio
    async def test_unknown_tokens(self, db_url: str) -> None:
        async with await connect(db_url) as db:
            await db.users.add_user("alice")
            for token in [generate_token(), "", "garbage", "wl_" + "a" * 43]:
                assert await db.users.get_user_by_token(token) is None

    @pytest.mark.asyncio
    async def test_only_the_hash_is_stored(self, tmp_path: Path) -> None:
        path = tmp_path / "w.db"
        async with await connect(sqlite_url(path)) as db:
            _, token = await db.users.add_user("alice")
            new_token = await db.users.rotate_token("alice")
            assert not files_contain(tmp_path, [token, new_token])  # db and WAL, while open
        conn = raw(path)
        rows = conn.execute("SELECT * FROM users").fetchall()
        conn.close()
        assert len(rows) == 1
        assert hashlib.sha256(new_token.encode()).hexdigest() in rows[0]
        for value in rows[0]:
            assert new_token not in str(value)
            assert token not in str(value)
        assert not files_contain(tmp_path, [token, new_token])

    @pytest.mark.asyncio
    async def test_rotate_invalidates_the_old_token(self, db_url: str) -> None:
        async with await connect(db_url) as db:
            user, old = await db.users.add_user("alice")
            new = await db.users.rotate_token("alice")
            assert new != old
            assert await db.users.get_user_by_token(old) is None
            rotated = await db.users.get_user_by_token(new)
            assert rotated is not None
            assert rotated.name == "alice"
            assert rotated.created_at == user.created_at
            assert rotated.token_issued_at >= user.token_issued_at
            with pytest.raises(UserNotFoundError, match="'bob'"):
                await db.users.rotate_token("bob")


class TestConcurrency:
    @pytest.mark.asyncio
    async def test_many_concurrent_calls(self, db_url: str) -> None:
        async with await connect(db_url) as db:
            added = await asyncio.gather(*(db.users.add_user(f"u{i}") for i in range(100)))
            tokens = {user.name: token for user, token in added}
            rotated = {f"u{i}" for i in range(0, 100, 10)}
            found = await asyncio.gather(
                *(db.users.get_user_by_token(t) for t in tokens.values()),
                *(db.users.add_user(f"v{i}") for i in range(50)),
                *(db.users.rotate_token(name) for name in sorted(rotated)),
            )
            assert len(await db.users.list_users()) == 150
            # Token reads run beside the writer (read_concurrent): a lookup racing the
            # rotation of its own token may see either side of it; every other one finds
            # its user.
            for name, user in zip(tokens, found[:100], strict=True):
                if name in rotated:
                    assert user is None or (isinstance(user, User) and user.name == name)
                else:
                    assert isinstance(user, User) and user.name == name
            for name in rotated:
                assert await db.users.get_user_by_token(tokens[name]) is None

    @pytest.mark.asyncio
    async def test_two_stores_on_one_file(self, db_url: str) -> None:
        url = db_url
        stores: list[Database] = [await connect(url), await connect(url)]
        try:
            await asyncio.gather(
                *(stores[i % 2].users.add_user(f"u{i}") for i in range(60)),
            )
            for store in stores:
                assert len(await store.users.list_users()) == 60
            with pytest.raises(UserExistsError):
                await stores[1].users.add_user("u0")
        finally:
            for store in stores:
                await store.close()
