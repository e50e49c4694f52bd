"""The token cache: what it remembers, for how long, and what makes it forget at once.

Unit cases use a fake clock; the repository cases run on both backends (``db_url``)
with two ``Database`` objects on one store, as two processes would have."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from wirelab.db import User, connect
from wirelab.db._token_cache import TokenCache


def _user(name: str) -> User:
    now = datetime.now(UTC)
    return User(name=name, created_at=now, token_issued_at=now)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_ttl_seconds() -> None:
    clock = Clock()
    cache = TokenCache(2.0, clock=clock)
    cache.put("h", _user("alice"), cache.generation)
    clock.now += 1.99
    cached = cache.get("h")
    assert cached is not None and cached.name == "alice"
    clock.now += 0.01
    assert cache.get("h") is None
    assert len(cache) == 0


def test_the_oldest_entries_go_beyond_the_bound() -> None:
    cache = TokenCache(60.0, max_entries=3, clock=Clock())
    for i in range(5):
        cache.put(f"h{i}", _user(f"u{i}"), cache.generation)
    assert len(cache) == 3
    assert [cache.get(f"h{i}") is None for i in range(5)] == [True, True, False, False, False]


def test_forget_user_drops_its_tokens_and_lookups_in_flight() -> None:
    cache = TokenCache(60.0, clock=Clock())
    cache.put("a1", _user("alice"), cache.generation)
    cache.put("b1", _user("bob"), cache.generation)
    in_flight = cache.generation  # a lookup of another alice token started here
    cache.forget_user("alice")
    cache.put("a2", _user("alice"), in_flight)  # it answers after the removal
    assert cache.get("a1") is None and cache.get("a2") is None
    assert cache.get("b1") is not None


def test_a_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl"):
        TokenCache(0)


@pytest.mark.asyncio
async def test_a_cached_token_outlives_a_removal_elsewhere_for_the_ttl(db_url: str) -> None:
    async with await connect(db_url) as server, await connect(db_url) as admin:
        server.users.cache_tokens(300)
        _, token = await admin.users.add_user("alice")
        assert (await server.users.get_user_by_token(token)) is not None
        await admin.users.remove_user("alice")  # another process: not seen before the ttl
        cached = await server.users.get_user_by_token(token)
        assert cached is not None and cached.name == "alice"
        server.users.cache_tokens(0)  # no cache: the database answers
        assert await server.users.get_user_by_token(token) is None


@pytest.mark.asyncio
async def test_a_local_removal_or_rotation_takes_effect_at_once(db_url: str) -> None:
    async with await connect(db_url) as db:
        db.users.cache_tokens(300)
        _, alice = await db.users.add_user("alice")
        _, bob = await db.users.add_user("bob")
        assert await db.users.get_user_by_token(alice) is not None
        assert await db.users.get_user_by_token(bob) is not None
        await db.users.remove_user("alice")
        assert await db.users.get_user_by_token(alice) is None
        new_bob = await db.users.rotate_token("bob")
        assert await db.users.get_user_by_token(bob) is None
        found = await db.users.get_user_by_token(new_bob)
        assert found is not None and found.name == "bob"


@pytest.mark.asyncio
async def test_a_token_issued_elsewhere_works_at_once(db_url: str) -> None:
    async with await connect(db_url) as server, await connect(db_url) as admin:
        server.users.cache_tokens(300)
        _, token = await admin.users.add_user("alice")
        assert await server.users.get_user_by_token(token) is not None
        rotated = await admin.users.rotate_token("alice")
        # Only matches are remembered: the new token is looked up, and found.
        found = await server.users.get_user_by_token(rotated)
        assert found is not None and found.name == "alice"


@pytest.mark.asyncio
async def test_a_negative_lifetime_is_refused(db_url: str) -> None:
    async with await connect(db_url) as db:
        with pytest.raises(ValueError, match=">= 0"):
            db.users.cache_tokens(-1)


@pytest.mark.asyncio
async def test_requests_that_miss_together_share_one_lookup(db_url: str) -> None:
    async with await connect(db_url) as db:
        _, token = await db.users.add_user("alice")
        db.users.cache_tokens(300)
        calls = 0
        run = db.read_concurrent  # type: ignore[attr-defined]

        async def counted(func: Any) -> Any:
            nonlocal calls
            calls += 1
            return await run(func)

        db.read_concurrent = counted  # type: ignore[attr-defined]
        found = await asyncio.gather(*(db.users.get_user_by_token(token) for _ in range(20)))
        assert {u.name for u in found if u is not None} == {"alice"} and None not in found
        assert calls == 1
        assert await db.users.get_user_by_token(token) is not None and calls == 1


@pytest.mark.asyncio
async def test_a_lookup_begun_before_a_local_removal_is_not_joined_after_it(db_url: str) -> None:
    async with await connect(db_url) as db:
        _, token = await db.users.add_user("alice")
        db.users.cache_tokens(300)
        run = db.read_concurrent  # type: ignore[attr-defined]
        read_done, answer = asyncio.Event(), asyncio.Event()

        async def held(func: Any) -> Any:
            result = await run(func)
            if not read_done.is_set():  # the first lookup: it saw alice, answers late
                read_done.set()
                await answer.wait()
            return result

        db.read_concurrent = held  # type: ignore[attr-defined]
        early = asyncio.ensure_future(db.users.get_user_by_token(token))
        await read_done.wait()
        await db.users.remove_user("alice")
        later = asyncio.ensure_future(db.users.get_user_by_token(token))
        await asyncio.sleep(0)  # `later` has either joined `early` or begun its own lookup
        answer.set()
        assert (await early) is not None  # it began before the removal: either side is fine
        assert await later is None  # begun after it: never the old answer
        assert await db.users.get_user_by_token(token) is None  # `early` was not remembered
