"""Inline relay files in the store (every backend): the bytes go in and out with the row,
nothing is journaled, and the migration keeps older files blob-backed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wirelab.auth import UserNotFoundError
from wirelab.db import QuotaDefaults, QuotaExceeded, RelayFile, connect, sqlite_url
from wirelab.db._migrations import MIGRATIONS, migrate

QUOTA = QuotaDefaults(bytes=100, files=10)


def _file(file_id: str, size: int, *, recipient: str = "bob", expires: float = 100.0) -> RelayFile:
    return RelayFile(
        id=file_id,
        recipient=recipient,
        sender="alice",
        name=f"{file_id}.bin",
        media_type="application/octet-stream",
        note=None,
        size=size,
        sha256="0" * 64,
        blob_key=file_id,
        created_at=1.0,
        expires_at=expires,
    )


@pytest.mark.asyncio
async def test_inline_bytes_live_and_die_with_the_row(db_url: str) -> None:
    async with await connect(db_url) as db:
        await db.users.add_user("bob")
        await db.relay.reserve([("blob", 10)], "bob", 1.0, QUOTA)
        await db.relay.insert_file(_file("blob", 10))
        await db.relay.insert_inline(_file("small", 3, expires=50.0), b"abc", QUOTA)
        await db.relay.insert_inline(_file("kept", 2), b"hi", QUOTA)
        listed = await db.relay.list_inbox("bob", 2.0)
        assert [(f.id, f.inline) for f in listed] == [
            ("blob", False),
            ("small", True),
            ("kept", True),
        ]
        assert await db.relay.read_content("small") == b"abc"
        assert await db.relay.read_content("blob") is None
        assert await db.relay.read_content("nope") is None
        # expiry: the inline file's bytes go with its row, only the blob is journaled
        assert await db.relay.delete_expired(60.0, 10) == (1, [])
        assert await db.relay.read_content("small") is None
        deleted = await db.relay.delete_file("bob", "kept", 2.0)
        assert deleted is not None and deleted.inline
        assert await db.relay.journal_list() == []
        assert await db.relay.delete_expired(200.0, 10) == (1, ["blob"])
        assert await db.relay.journal_list("delete") == ["blob"]


@pytest.mark.asyncio
async def test_inline_insert_checks_quota_and_recipient(db_url: str) -> None:
    async with await connect(db_url) as db:
        await db.users.add_user("bob")
        await db.relay.reserve([("held", 60)], "bob", 1.0, QUOTA)  # a send in progress
        with pytest.raises(QuotaExceeded):
            await db.relay.insert_inline(_file("big", 41), b"x" * 41, QUOTA)
        await db.relay.insert_inline(_file("fits", 40), b"x" * 40, QUOTA)
        with pytest.raises(UserNotFoundError):
            await db.relay.insert_inline(_file("lost", 1, recipient="ghost"), b"x", QUOTA)
        with pytest.raises(UserNotFoundError):
            await db.relay.reserve([("k", 1)], "ghost", 1.0, QUOTA)
        assert [f.id for f in await db.relay.list_inbox("bob", 2.0)] == ["fits"]
        await db.users.remove_user("bob")  # purge: inline bytes go, nothing to delete
        assert await db.relay.read_content("fits") is None
        assert await db.relay.journal_list("delete") == ["held"]


@pytest.mark.asyncio
async def test_migration_12_keeps_existing_files_blob_backed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:11])
    conn.execute(
        "INSERT INTO users (name, token_hash, created_at, token_issued_at)"
        " VALUES ('bob', 'h', 'now', 'now')"
    )
    conn.execute(
        "INSERT INTO relay_files (id, recipient, sender, name, media_type, size, sha256,"
        " blob_key, created_at, expires_at) VALUES"
        " ('old', 'bob', 'alice', 'a', 'text/plain', 1, ?, 'old', 1.0, 100.0)",
        ("0" * 64,),
    )
    conn.close()
    async with await connect(sqlite_url(path)) as db:
        (file,) = await db.relay.list_inbox("bob", 2.0)
        assert (file.id, file.inline) == ("old", False)
        assert await db.relay.read_content("old") is None
