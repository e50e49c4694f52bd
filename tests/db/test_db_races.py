"""Races between several connections, on every backend: what SQLite serialises for free
and PostgreSQL gets from explicit locks (leases, claims, quotas, a batch's last commit)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from wirelab.auth import UserNotFoundError
from wirelab.db import (
    Database,
    MediaJob,
    PendingExceeded,
    PendingLimits,
    QuotaDefaults,
    QuotaExceeded,
    RelayBatch,
    RelayFile,
    RelayUpload,
    connect,
)

RACERS = 8
QUOTA = QuotaDefaults(bytes=100, files=1000)


@pytest_asyncio.fixture
async def stores(db_url: str) -> AsyncIterator[list[Database]]:
    """:data:`RACERS` stores (connections) on one database, with users alice and bob."""
    opened = [await connect(db_url) for _ in range(RACERS)]
    try:
        for name in ("alice", "bob"):
            await opened[0].users.add_user(name)
        yield opened
    finally:
        for store in opened:
            await store.close()


def _file(n: int, now: float) -> RelayFile:
    return RelayFile(
        id=f"f{n}", recipient="bob", sender="alice", name=f"n{n}", media_type="text/plain",
        note=None, size=1, sha256="00", blob_key=f"f{n}", created_at=now, expires_at=now + 3600,
    )  # fmt: skip


def _job(n: int, now: float) -> MediaJob:
    return MediaJob(
        id=f"job{n}", owner="alice", state="queued", request="{}", request_hash=f"h{n}",
        idempotency_key=None, progress=0.0, phase="queued", error_message=None,
        error_retryable=None, cancel_requested=False, attempts=0, not_before=now,
        lease_owner=None, lease_until=None, result_key=None, result_name=None,
        result_size=None, result_sha256=None, result_duration=None, result_start=None,
        created_at=now, updated_at=now, started_at=None, finished_at=None, expires_at=None,
    )  # fmt: skip


@pytest.mark.asyncio
async def test_one_file_one_lease_among_eight_racers(stores: list[Database]) -> None:
    now = time.time()
    await stores[0].relay.insert_file(_file(0, now))
    for round_ in range(5):
        leases = await asyncio.gather(
            *(
                s.relay.lease_next("bob", now, f"l{round_}-{i}", now + 60)
                for i, s in enumerate(stores)
            )
        )
        won = [lease for lease in leases if lease is not None]
        assert len(won) == 1
        assert won[0].deliveries == round_ + 1
        assert await stores[0].relay.release_lease("bob", "f0", won[0].lease_id, now) is not None


@pytest.mark.asyncio
async def test_racing_leasers_take_each_file_once_in_order(stores: list[Database]) -> None:
    now = time.time()
    for n in range(24):
        await stores[n % RACERS].relay.insert_file(_file(n, now))

    async def drain(store: Database, who: int) -> list[str]:
        taken: list[str] = []
        while (file := await store.relay.lease_next("bob", now, f"l{who}", now + 60)) is not None:
            taken.append(file.id)
        return taken

    taken = await asyncio.gather(*(drain(s, i) for i, s in enumerate(stores)))
    assert Counter(f for t in taken for f in t) == Counter(f"f{n}" for n in range(24))
    for one in taken:  # each leaser got its files in queue order
        assert one == sorted(one, key=lambda f: int(f[1:]))
    inbox = await stores[0].relay.list_inbox("bob", now)
    assert [f.id for f in inbox] == [f"f{n}" for n in range(24)]


@pytest.mark.asyncio
async def test_concurrent_reservations_never_exceed_the_quota(stores: list[Database]) -> None:
    async def one(i: int) -> bool:
        try:
            await stores[i % RACERS].relay.reserve([(f"k{i}", 30)], "bob", time.time(), QUOTA)
        except QuotaExceeded:
            return False
        return True

    results = await asyncio.gather(*(one(i) for i in range(40)))
    assert sum(results) == 3  # 3 * 30 <= 100 < 4 * 30
    assert len(await stores[0].relay.journal_list("upload")) == 3


@pytest.mark.asyncio
async def test_concurrent_reservations_never_exceed_the_senders_allowance(
    stores: list[Database],
) -> None:
    allowance = PendingLimits(bytes=10**9, uploads=5)
    recipients = ["alice", "bob"]

    async def one(i: int) -> bool:
        try:
            await stores[i % RACERS].relay.reserve(
                [(f"k{i}", 1)], recipients[i % 2], time.time(), QUOTA,
                sender="carol", pending=allowance,
            )  # fmt: skip
        except PendingExceeded:
            return False
        return True

    results = await asyncio.gather(*(one(i) for i in range(40)))
    assert sum(results) == 5


@pytest.mark.asyncio
async def test_racing_workers_claim_each_media_job_once(stores: list[Database]) -> None:
    now = time.time()
    for n in range(12):
        created, new = await stores[0].media.create(_job(n, now), now)
        assert new
        assert created.id == f"job{n}"

    async def drain(store: Database, who: int) -> list[str]:
        claimed: list[str] = []
        while (job := await store.media.claim(f"w{who}", time.time(), now + 60)) is not None:
            assert job.state == "running"
            assert job.lease_owner == f"w{who}"
            claimed.append(job.id)
        return claimed

    claimed = await asyncio.gather(*(drain(s, i) for i, s in enumerate(stores)))
    assert Counter(j for c in claimed for j in c) == Counter(f"job{n}" for n in range(12))


@pytest.mark.asyncio
async def test_racing_creates_with_one_idempotency_key_make_one_job(
    stores: list[Database],
) -> None:
    now = time.time()

    async def create(i: int) -> tuple[MediaJob, bool]:
        job = _job(i, now)
        keyed = MediaJob(**{**{f: getattr(job, f) for f in job.__slots__}, "idempotency_key": "k"})
        return await stores[i % RACERS].media.create(keyed, now)

    results = await asyncio.gather(*(create(i) for i in range(16)))
    assert sum(new for _, new in results) == 1
    assert len({job.id for job, _ in results}) == 1


@pytest.mark.asyncio
async def test_the_last_two_commits_of_a_batch_deliver_it_once(stores: list[Database]) -> None:
    now = time.time()
    for round_ in range(4):
        batch_id = f"b{round_}"
        batch = RelayBatch(batch_id, "alice", "bob", None, None, None, 2, now, now + 3600)
        uploads = [
            RelayUpload(
                id=f"{batch_id}u{i}",
                owner="alice",
                recipient="bob",
                name=f"n{i}",
                media_type="text/plain",
                note=None,
                length=1,
                sha256=None,
                created_at=now,
                expires_at=now + 3600,
                batch_id=batch_id,
                batch_index=i,
            )
            for i in range(2)
        ]
        await stores[0].relay.create_batch(batch, uploads)
        delivered = await asyncio.gather(
            *(
                stores[i + 1].relay.commit_batch_upload(u.id, "00", now, 3600)
                for i, u in enumerate(uploads)
            )
        )
        assert sorted(len(d) for d in delivered) == [0, 2]
        files = await stores[0].relay.batch_files(batch_id, now)
        assert [f.batch_index for f in files] == [0, 1]


@pytest.mark.asyncio
async def test_a_lease_never_misses_a_file_committed_before_it(stores: list[Database]) -> None:
    """Each racer inserts a file, then leases one: as many files as leases are there, so
    no lease may come back empty (a snapshot older than a competitor's insert would)."""
    now = time.time()

    async def send_and_take(store: Database, who: int) -> list[str]:
        taken = []
        for n in range(6):
            await store.relay.insert_file(_file(who * 100 + n, now))
            leased = await store.relay.lease_next("bob", now, f"l{who}", now + 60)
            assert leased is not None
            taken.append(leased.id)
        return taken

    taken = await asyncio.gather(*(send_and_take(s, i) for i, s in enumerate(stores)))
    assert len({f for t in taken for f in t}) == 6 * RACERS


@pytest.mark.asyncio
async def test_no_file_sent_while_a_user_is_removed_reaches_its_successor(
    stores: list[Database],
) -> None:
    now = time.time()
    for round_ in range(5):
        name = f"dave{round_}"
        await stores[0].users.add_user(name)

        async def send(i: int, file: RelayFile) -> None:
            with contextlib.suppress(UserNotFoundError):
                await stores[i].relay.insert_file(file, QUOTA)

        await asyncio.gather(
            stores[0].users.remove_user(name),
            *(
                send(i, replace(_file(round_ * 100 + i, now), recipient=name))
                for i in range(1, RACERS)
            ),
        )
        await stores[0].users.add_user(name)
        assert await stores[0].relay.list_inbox(name, now) == []


@pytest.mark.asyncio
async def test_of_racing_acknowledges_of_one_file_exactly_one_wins(
    stores: list[Database],
) -> None:
    """The others find nothing (the relay answers them 404), on every backend: the
    acknowledge is one DELETE ... RETURNING, not a read then a delete."""
    now = time.time()
    for round_ in range(5):
        file = _file(round_, now)
        await stores[0].relay.insert_file(file)
        deleted = await asyncio.gather(*(s.relay.delete_file("bob", file.id, now) for s in stores))
        won = [d for d in deleted if d is not None]
        assert len(won) == 1
        assert won[0].id == file.id
        assert await stores[0].relay.get_file("bob", file.id, now) is None
    assert sorted(await stores[0].relay.journal_list("delete")) == [f"f{n}" for n in range(5)]


@pytest.mark.asyncio
async def test_racing_download_counts_are_all_counted(stores: list[Database]) -> None:
    """Counting is one statement outside an explicit transaction where the engine
    allows: still atomic, so no increment is lost."""
    now = time.time()
    await stores[0].relay.insert_file(_file(0, now))

    async def count(store: Database) -> None:
        for _ in range(5):
            await store.relay.count_download("f0")

    await asyncio.gather(*(count(s) for s in stores))
    file = await stores[0].relay.get_file("bob", "f0", now)
    assert file is not None
    assert file.downloads == 5 * RACERS
