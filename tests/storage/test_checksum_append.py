"""``append(..., checksum=...)``: an all-or-nothing append (the tus ``Upload-Checksum``),
for every BlobStore implementation (the ``store`` fixtures of conftest.py)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Callable

import pytest

from wirelab import IntegrityError, UsageError
from wirelab.storage import BlobStore, ChecksumMismatchError

MIB = 1024 * 1024
DATA = random.Random(11).randbytes(2 * MIB + 3)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha1(data: bytes) -> tuple[str, bytes]:
    return ("sha1", hashlib.sha1(data).digest())


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(store: BlobStore, key: str) -> bytes:
    async with await store.open(key) as reader:
        return b"".join([part async for part in reader])


@pytest.mark.asyncio
async def test_a_matching_checksum_appends_durably(
    store_factory: Callable[[], BlobStore],
) -> None:
    store = store_factory()
    await store.create_upload("u")
    assert await store.append("u", 0, pieces(DATA[:MIB]), checksum=sha1(DATA[:MIB])) == MIB
    tail = DATA[MIB:]
    checksum = ("sha256", hashlib.sha256(tail).digest())
    assert await store.append("u", MIB, pieces(tail), checksum=checksum) == len(DATA)
    assert await store_factory().upload_offset("u") == len(DATA)  # durable: a new instance
    await store.commit("u", "k", expected_sha256=sha(DATA))
    assert await read_all(store, "k") == DATA


@pytest.mark.asyncio
async def test_a_mismatch_records_nothing_and_the_upload_goes_on(store: BlobStore) -> None:
    await store.create_upload("u")
    await store.append("u", 0, pieces(DATA[:MIB]))
    garbage = b"\x01" * (MIB + 5)
    with pytest.raises(ChecksumMismatchError) as info:
        await store.append("u", MIB, pieces(garbage), checksum=sha1(DATA[MIB:]))
    assert isinstance(info.value, IntegrityError)
    assert (info.value.expected, info.value.actual) == (sha1(DATA[MIB:])[1], sha1(garbage)[1])
    assert await store.upload_offset("u") == MIB
    # The rejected bytes must leave no trace, neither in the file nor in a running hash.
    await store.append("u", MIB, pieces(DATA[MIB:]), checksum=sha1(DATA[MIB:]))
    await store.commit("u", "k", expected_sha256=sha(DATA))
    assert await read_all(store, "k") == DATA


@pytest.mark.asyncio
async def test_an_interrupted_checked_append_records_nothing(store: BlobStore) -> None:
    async def client_goes_away() -> AsyncIterator[bytes]:
        async for part in pieces(DATA[: MIB + 1]):
            yield part
        raise ConnectionResetError("client went away")

    await store.create_upload("u")
    with pytest.raises(ConnectionResetError):
        await store.append("u", 0, client_goes_away(), checksum=sha1(DATA))
    assert await store.upload_offset("u") == 0  # unverifiable bytes are not kept
    await store.append("u", 0, pieces(DATA), checksum=sha1(DATA))
    await store.commit("u", "k", expected_sha256=sha(DATA))
    assert await read_all(store, "k") == DATA


@pytest.mark.asyncio
async def test_an_empty_checked_append(store: BlobStore) -> None:
    await store.create_upload("u")
    assert await store.append("u", 0, pieces(b""), checksum=sha1(b"")) == 0
    with pytest.raises(ChecksumMismatchError):
        await store.append("u", 0, pieces(b""), checksum=sha1(b"x"))
    assert await store.upload_offset("u") == 0


@pytest.mark.asyncio
async def test_an_unknown_algorithm_is_refused_before_any_io(store: BlobStore) -> None:
    await store.create_upload("u")
    with pytest.raises(UsageError, match="nope"):
        await store.append("u", 0, pieces(b"abc"), checksum=("nope", b"\x00"))
    assert await store.upload_offset("u") == 0
