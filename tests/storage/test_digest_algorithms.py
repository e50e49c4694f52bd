"""The blob store's digest algorithm parameter (``create_upload``/``commit``/``put``), on
every store of the contract (``store`` / ``store_factory``: local, moto, rclone)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator

import pytest
from blake3 import blake3

from wirelab import UsageError
from wirelab.storage import BlobNotFoundError, BlobStore, DigestMismatchError, LocalBlobStore
from wirelab.storage._s3 import S3BlobStore
from wirelab.storage._s3state import UploadState

from .conftest import StoreFactory

DATA = random.Random(3).randbytes(2 * 1024 * 1024 + 5)


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _flip(content: bytes) -> bytes:
    flipped = bytearray(content)
    flipped[0] ^= 0xFF
    return bytes(flipped)


async def flip_first_byte(store: BlobStore, upload_id: str) -> bytes:
    """Change the stored bytes of an upload behind the store's back; its new content.

    Only the store's running hash does not see this: a digest read back does."""
    if isinstance(store, LocalBlobStore):
        path = store.root / "uploads" / f"{upload_id}.data"
        path.write_bytes(_flip(path.read_bytes()))
        return path.read_bytes()
    assert isinstance(store, S3BlobStore)
    raw = await store.bucket.get(store.layout.state(upload_id), "test")
    assert raw is not None
    state = UploadState.from_json(upload_id, raw)
    # DATA is shorter than a part: every byte is in the staged object
    assert state.staged_key is not None and state.staged_size == len(DATA)
    staged = await store.bucket.get(state.staged_key, "test")
    assert staged is not None
    await store.bucket.put(state.staged_key, _flip(staged), "test")
    return _flip(staged)


@pytest.mark.asyncio
async def test_blake3_commit_uses_the_running_hash_and_records_the_algorithm(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    await store.create_upload("u", algorithm="blake3")
    await store.append("u", 0, pieces(DATA))
    await flip_first_byte(store, "u")  # invisible to the running hash
    info = await store.commit(
        "u", "k", expected_sha256=blake3(DATA).hexdigest(), algorithm="blake3"
    )
    assert (info.sha256, info.algorithm) == (blake3(DATA).hexdigest(), "blake3")
    stat = await store_factory().stat("k")  # read back from what the store recorded
    assert (stat.sha256, stat.algorithm) == (blake3(DATA).hexdigest(), "blake3")


@pytest.mark.asyncio
async def test_commit_in_another_algorithm_reads_the_bytes_again(store: BlobStore) -> None:
    await store.create_upload("u", algorithm="blake3")
    await store.append("u", 0, pieces(DATA))
    changed = await flip_first_byte(store, "u")
    info = await store.commit("u", "k", expected_sha256=None, algorithm="sha256")
    assert (info.sha256, info.algorithm) == (hashlib.sha256(changed).hexdigest(), "sha256")
    assert (await store.stat("k")).algorithm == "sha256"


@pytest.mark.asyncio
async def test_blake3_after_a_restart_is_verified_by_reading(store_factory: StoreFactory) -> None:
    first = store_factory()
    await first.create_upload("u", algorithm="blake3")
    await first.append("u", 0, pieces(DATA))
    restarted = store_factory()
    await restarted.recover()
    with pytest.raises(DigestMismatchError) as caught:
        await restarted.commit("u", "k", expected_sha256="0" * 64, algorithm="blake3")
    assert (caught.value.algorithm, caught.value.actual) == ("blake3", blake3(DATA).hexdigest())
    assert "BLAKE3" in str(caught.value)
    assert await restarted.upload_offset("u") == len(DATA)  # left intact, resumable
    info = await restarted.commit(
        "u", "k", expected_sha256=blake3(DATA).hexdigest(), algorithm="blake3"
    )
    assert info.algorithm == "blake3"


@pytest.mark.asyncio
async def test_put_in_each_algorithm(store: BlobStore) -> None:
    for algorithm, digest in (
        ("blake3", blake3(DATA).hexdigest()),
        ("sha256", hashlib.sha256(DATA).hexdigest()),
    ):
        info = await store.put(algorithm, pieces(DATA), expected_sha256=digest, algorithm=algorithm)
        assert (info.size, info.sha256, info.algorithm) == (len(DATA), digest, algorithm)
    with pytest.raises(DigestMismatchError, match="BLAKE3"):
        await store.put(
            "bad",
            pieces(DATA),
            expected_sha256=hashlib.sha256(DATA).hexdigest(),
            algorithm="blake3",
        )
    with pytest.raises(BlobNotFoundError):
        await store.stat("bad")


@pytest.mark.asyncio
async def test_unknown_algorithm_is_refused_before_any_io(store: BlobStore) -> None:
    with pytest.raises(UsageError, match="md5"):
        await store.create_upload("u", algorithm="md5")
    assert await store.list_uploads() == []
    with pytest.raises(UsageError, match="md5"):
        await store.put("k", pieces(b"x"), expected_sha256=None, algorithm="md5")
    with pytest.raises(BlobNotFoundError):
        await store.stat("k")
