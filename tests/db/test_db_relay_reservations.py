"""Reservations that lapse and the sender's allowance, on every backend (no server)."""

from __future__ import annotations

import pytest

from wirelab.db import (
    PendingExceeded,
    PendingLimits,
    QuotaDefaults,
    QuotaExceeded,
    connect,
)

QUOTA = QuotaDefaults(bytes=100, files=10)
ALLOWANCE = PendingLimits(bytes=150, uploads=3)
T0 = 1_000_000.0


@pytest.mark.asyncio
async def test_a_lapsed_reservation_frees_the_room_and_is_checked_again(db_url: str) -> None:
    async with await connect(db_url) as db:
        await db.users.add_user("bob")
        relay = db.relay
        await relay.reserve([("a", 80)], "bob", T0, QUOTA, sender="alice", until=T0 + 10)
        with pytest.raises(QuotaExceeded, match="80 bytes used"):
            await relay.reserve([("c", 30)], "bob", T0 + 9, QUOTA, sender="carol")
        # Lapsed at T0 + 10: the room is free for carol.
        used = await relay.reserve([("c", 30)], "bob", T0 + 10, QUOTA, sender="carol")
        assert used.used_bytes == 0
        # Bytes for "a" again: its 80 no longer fit beside carol's 30.
        with pytest.raises(QuotaExceeded, match="30 bytes used"):
            await relay.hold_reservation("a", T0 + 11, QUOTA, T0 + 20)
        await relay.journal_remove("c")
        await relay.hold_reservation("a", T0 + 11, QUOTA, T0 + 20)  # renewed until T0 + 20
        with pytest.raises(QuotaExceeded):
            await relay.reserve([("d", 30)], "bob", T0 + 19, QUOTA, sender="carol")
        await relay.reserve([("d", 30)], "bob", T0 + 20, QUOTA, sender="carol")


@pytest.mark.asyncio
async def test_reservations_held_for_good_lapse_when_released(db_url: str) -> None:
    async with await connect(db_url) as db:
        await db.users.add_user("bob")
        relay = db.relay
        await relay.reserve([("old", 80)], "bob", T0, QUOTA)  # until=None: for good
        with pytest.raises(QuotaExceeded):
            await relay.reserve([("c", 30)], "bob", T0 + 10_000, QUOTA)
        await relay.release_reservation("old", T0 + 5)
        await relay.reserve([("c", 30)], "bob", T0 + 10_000, QUOTA)
        await relay.release_reservation("c", T0 + 20_000)  # not held for good: unchanged
        with pytest.raises(QuotaExceeded):
            await relay.reserve([("d", 80)], "bob", T0 + 10_001, QUOTA)


@pytest.mark.asyncio
async def test_the_senders_allowance_counts_lapsed_uploads_too(db_url: str) -> None:
    async with await connect(db_url) as db:
        for name in ("bob", "carol"):
            await db.users.add_user(name)
        relay = db.relay

        async def reserve(key: str, size: int, to: str = "bob") -> None:
            await relay.reserve(
                [(key, size)], to, T0 + 100, QUOTA, sender="alice", pending=ALLOWANCE, until=T0
            )

        await reserve("a", 90)
        with pytest.raises(PendingExceeded, match="90 bytes pending") as caught:
            await reserve("b", 61, "carol")
        assert (caught.value.kind, caught.value.limit) == ("bytes", 150)
        await reserve("b", 60, "carol")
        await reserve("c", 0)
        with pytest.raises(PendingExceeded, match="3 uploads pending"):
            await reserve("d", 0)
        await relay.journal_remove("a")  # finished or discarded: the allowance is back
        await reserve("d", 0)
