"""The Coordinator contract, run against the embedded and the Redis implementation.

Each case gets two clients, ``a`` and ``b``, that share state: for Redis two separate
coordinators (two connections, as two processes would have) on the test's own key
prefix; for the embedded one the same instance twice (it is private to its process).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from wirelab import UsageError
from wirelab.coord import (
    CoordinationError,
    Coordinator,
    EmbeddedCoordinator,
    Lease,
    LeaseBusy,
    LeaseLost,
    coordinator_for,
)

pytestmark = pytest.mark.asyncio

Pair = tuple[Coordinator, Coordinator]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Poll ``check`` until it is true; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest_asyncio.fixture(params=["embedded", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    if request.param == "embedded":
        one = EmbeddedCoordinator()
        yield one, one
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    url = f"{redis_url}?prefix={prefix}"
    a, b = coordinator_for(url), coordinator_for(url)
    async with a, b:
        assert a.distributed and b.distributed
        yield a, b
    raw = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in raw.scan_iter(match=f"{prefix}*")]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()


async def test_a_lease_is_exclusive_across_clients(pair: Pair) -> None:
    a, b = pair
    lease = await a.try_acquire("upload:x", 30)
    assert lease is not None
    assert await b.try_acquire("upload:x", 30) is None
    assert await a.try_acquire("upload:x", 30) is None  # not re-entrant either
    assert await b.try_acquire("upload:y", 30) is not None  # names are independent
    assert await a.release(lease)
    assert await b.try_acquire("upload:x", 30) is not None


async def test_a_lease_expires_after_its_ttl(pair: Pair) -> None:
    a, b = pair
    old = await a.try_acquire("sweeper", 0.2)
    assert old is not None
    taken: list[Lease] = []

    async def b_takes_over() -> bool:
        lease = await b.try_acquire("sweeper", 30)
        if lease is not None:
            taken.append(lease)
        return lease is not None

    await eventually(b_takes_over)
    # The old holder can neither extend nor release what it no longer holds.
    assert not await a.renew(old, 30)
    assert not await a.release(old)
    assert await b.try_acquire("sweeper", 30) is None
    assert await b.release(taken[0])


async def test_renew_keeps_a_lease_past_its_ttl(pair: Pair) -> None:
    a, b = pair
    lease = await a.try_acquire("leader", 0.3)
    assert lease is not None
    for _ in range(6):  # 0.6 s in all: twice the TTL
        await asyncio.sleep(0.1)
        assert await a.renew(lease, 0.3)
        assert await b.try_acquire("leader", 0.3) is None


async def test_release_checks_the_token(pair: Pair) -> None:
    a, b = pair
    lease = await a.try_acquire("upload:t", 30)
    assert lease is not None
    forged = Lease("upload:t", "not-the-token")
    assert not await b.release(forged)
    assert not await b.renew(forged, 30)
    assert await b.try_acquire("upload:t", 30) is None  # still a's
    assert await a.release(lease)
    assert not await a.release(lease)  # twice: nothing left to release


async def test_wake_ups_reach_the_other_client(pair: Pair) -> None:
    a, b = pair
    with b.listen("inbox:bob") as bob, b.listen("inbox:carol") as carol:
        assert b.listening("inbox:bob")
        a.publish("inbox:bob")
        assert await bob.wait(5)
        assert not carol.event.is_set()
        bob.clear()
        assert not await bob.wait(0.05)  # nothing new since the clear
        a.publish("inbox:bob")
        assert await bob.wait(5)
    assert not b.listening("inbox:bob")


async def test_a_closed_listener_is_not_woken(pair: Pair) -> None:
    a, b = pair
    listener = b.listen("inbox:dave")
    listener.close()
    with b.listen("inbox:dave") as other:
        a.publish("inbox:dave")
        assert await other.wait(5)
    assert not listener.event.is_set()


async def test_set_if_absent_is_atomic(pair: Pair) -> None:
    a, b = pair
    results = await asyncio.gather(
        *(c.set_if_absent("live:u1", 30) for _ in range(20) for c in (a, b))
    )
    assert results.count(True) == 1
    assert await a.set_if_absent("live:u2", 30)  # another name


async def test_set_if_absent_marks_expire(pair: Pair) -> None:
    a, b = pair
    assert await a.set_if_absent("live:e", 0.1)
    assert not await b.set_if_absent("live:e", 0.1)

    async def marked_again() -> bool:
        return await b.set_if_absent("live:e", 30)

    await eventually(marked_again)


async def test_presence_lists_live_members(pair: Pair) -> None:
    a, b = pair
    await a.join("servers", "one", 30)
    await b.join("servers", "two", 0.2)
    assert await a.members("servers") == {"one", "two"}
    assert await b.members("others") == set()

    async def two_expired() -> bool:
        return await b.members("servers") == {"one"}

    await eventually(two_expired)
    await b.join("servers", "two", 30)  # joins again
    await a.leave("servers", "one")
    await a.leave("servers", "one")  # idempotent
    assert await a.members("servers") == {"two"}


async def test_hold_waits_for_a_release(pair: Pair) -> None:
    a, b = pair
    order: list[str] = []
    async with a.hold("commit:z", 30):
        waiter = asyncio.create_task(_hold_briefly(b, "commit:z", order))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        order.append("a done")
    await asyncio.wait_for(waiter, 5)
    assert order == ["a done", "b held"]


async def _hold_briefly(c: Coordinator, name: str, order: list[str]) -> None:
    async with c.hold(name, 30, wait=10):
        order.append("b held")


async def test_a_quiet_release_is_found_by_polling(pair: Pair) -> None:
    a, b = pair
    lease = await a.try_acquire("quiet", 30)
    assert lease is not None
    waiter = asyncio.create_task(b.acquire("quiet", 1.0, wait=10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    assert await a.release(lease, announce=False)
    assert await asyncio.wait_for(waiter, 10) is not None


async def test_hold_refuses_when_busy(pair: Pair) -> None:
    a, b = pair
    async with a.hold("commit:busy", 30):
        with pytest.raises(LeaseBusy):
            async with b.hold("commit:busy", 30, wait=0.05):
                pass
    async with b.hold("commit:busy", 30):  # released at the end of a's hold
        pass


async def test_hold_renews_past_the_ttl(pair: Pair) -> None:
    a, b = pair
    async with a.hold("long", 0.3):
        await asyncio.sleep(0.8)
        assert await b.try_acquire("long", 0.3) is None
    assert await b.try_acquire("long", 0.3) is not None


async def test_hold_cancels_the_work_when_the_lease_is_lost(pair: Pair) -> None:
    a, b = pair
    with pytest.raises(LeaseLost):
        async with a.hold("fragile", 0.3) as lease:
            assert await b.release(lease)  # as if it had expired and been taken over
            assert await b.try_acquire("fragile", 30) is not None
            await asyncio.sleep(5)  # cancelled by the failed renewal long before this


async def test_an_unreachable_redis_is_one_clear_error() -> None:
    coord = coordinator_for("redis://127.0.0.1:1/0")
    with pytest.raises(CoordinationError, match=r"cannot reach .*127\.0\.0\.1:1"):
        await coord.start()


async def test_unknown_schemes_are_refused() -> None:
    with pytest.raises(UsageError, match="unsupported coordination URL scheme 'http'"):
        coordinator_for("http://example")
    assert not coordinator_for(None).distributed
    assert not coordinator_for("embedded").distributed
