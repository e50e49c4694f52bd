"""Quotas in the store (every backend): per-user settings, atomic reservations; and the
migration of old SQLite data."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from wirelab.auth import UserNotFoundError
from wirelab.db import UNCHANGED, Database, QuotaDefaults, QuotaExceeded, connect
from wirelab.db._migrations import MIGRATIONS, migrate

DEFAULTS = QuotaDefaults(bytes=100, files=10)


@pytest.mark.asyncio
async def test_set_quota_keeps_what_is_unchanged(db_url: str) -> None:
    async with await connect(db_url) as db:
        await db.users.add_user("bob")
        user = await db.users.set_quota("bob", quota_bytes=5)
        assert (user.quota_bytes, user.quota_files) == (5, None)
        user = await db.users.set_quota("bob", quota_files=7)
        assert (user.quota_bytes, user.quota_files) == (5, 7)
        user = await db.users.set_quota("bob", quota_bytes=None, quota_files=UNCHANGED)
        assert (user.quota_bytes, user.quota_files) == (None, 7)
        assert await db.users.get_user("bob") == user
        with pytest.raises(UserNotFoundError, match="'ghost'"):
            await db.users.set_quota("ghost", quota_bytes=1)
        with pytest.raises(ValueError, match="quota_files"):
            await db.users.set_quota("bob", quota_files=-1)


@pytest.mark.asyncio
async def test_reservations_count_and_end_with_their_journal_entry(db_url: str) -> None:
    async with await connect(db_url) as db:
        await db.users.add_user("bob")
        now = time.time()
        usage = await db.relay.reserve([("k1", 60), ("k2", 30)], "bob", now, DEFAULTS)
        assert (usage.used_bytes, usage.used_files) == (0, 0)
        with pytest.raises(QuotaExceeded) as caught:
            await db.relay.reserve([("k3", 11)], "bob", now, DEFAULTS)
        assert (caught.value.kind, caught.value.used, caught.value.limit) == ("bytes", 90, 100)
        assert await db.relay.journal_list() == ["k1", "k2"]  # nothing written on refusal
        await db.relay.journal_remove("k1")
        usage = await db.relay.reserve([("k3", 11)], "bob", now, DEFAULTS)
        assert (usage.used_bytes, usage.used_files) == (30, 1)
        with pytest.raises(QuotaExceeded, match="files"):
            await db.relay.reserve([(f"f{i}", 0) for i in range(9)], "bob", now, DEFAULTS)


@pytest.mark.asyncio
async def test_concurrent_reservations_from_two_stores_never_overshoot(db_url: str) -> None:
    url = db_url
    stores: list[Database] = [await connect(url), await connect(url)]
    try:
        await stores[0].users.add_user("bob")

        async def one(i: int) -> bool:
            try:
                await stores[i % 2].relay.reserve([(f"k{i}", 30)], "bob", time.time(), DEFAULTS)
            except QuotaExceeded:
                return False
            return True

        results = await asyncio.gather(*(one(i) for i in range(20)))
        assert sum(results) == 3  # 3 * 30 <= 100 < 4 * 30
        assert len(await stores[1].relay.journal_list()) == 3
    finally:
        for store in stores:
            await store.close()


def test_migration_keeps_existing_uploads_and_users(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    try:
        assert migrate(conn, MIGRATIONS[:3]) == 3
        conn.execute(
            "INSERT INTO users (name, token_hash, created_at, token_issued_at)"
            " VALUES ('bob', 'h', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')"
        )
        conn.execute(
            "INSERT INTO relay_uploads VALUES"
            " ('u1', 'alice', 'bob', 'n', 'text/plain', NULL, 5, 'ab', 1.0, 2.0)"
        )
        assert migrate(conn) == len(MIGRATIONS)
        row = conn.execute("SELECT id, sha256, state FROM relay_uploads").fetchone()
        assert row == ("u1", "ab", "receiving")
        assert conn.execute("SELECT quota_bytes FROM users").fetchone() == (None,)
    finally:
        conn.close()
