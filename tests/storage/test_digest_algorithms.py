"""The blob store's digest algorithm parameter (``create_upload``/``commit``/``put``)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from blake3 import blake3

from wirelab import UsageError
from wirelab.storage import DigestMismatchError, LocalBlobStore

DATA = random.Random(3).randbytes(2 * 1024 * 1024 + 5)


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def flip_first_byte(root: Path, upload_id: str) -> bytes:
    path = root / "uploads" / f"{upload_id}.data"
    content = bytearray(path.read_bytes())
    content[0] ^= 0xFF
    path.write_bytes(content)
    return bytes(content)


@pytest.mark.asyncio
async def test_blake3_commit_uses_the_running_hash_and_records_the_algorithm(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path)
    await store.create_upload("u", algorithm="blake3")
    await store.append("u", 0, pieces(DATA))
    flip_first_byte(tmp_path, "u")  # invisible to the running hash
    info = await store.commit(
        "u", "k", expected_sha256=blake3(DATA).hexdigest(), algorithm="blake3"
    )
    assert (info.sha256, info.algorithm) == (blake3(DATA).hexdigest(), "blake3")
    stat = await LocalBlobStore(tmp_path).stat("k")  # read back from the digest file
    assert (stat.sha256, stat.algorithm) == (blake3(DATA).hexdigest(), "blake3")


@pytest.mark.asyncio
async def test_commit_in_another_algorithm_reads_the_file_again(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    await store.create_upload("u", algorithm="blake3")
    await store.append("u", 0, pieces(DATA))
    changed = flip_first_byte(tmp_path, "u")
    info = await store.commit("u", "k", expected_sha256=None, algorithm="sha256")
    assert (info.sha256, info.algorithm) == (hashlib.sha256(changed).hexdigest(), "sha256")
    assert (await store.stat("k")).algorithm == "sha256"


@pytest.mark.asyncio
async def test_blake3_after_a_restart_is_verified_by_reading(tmp_path: Path) -> None:
    first = LocalBlobStore(tmp_path)
    await first.create_upload("u", algorithm="blake3")
    await first.append("u", 0, pieces(DATA))
    restarted = LocalBlobStore(tmp_path)
    await restarted.recover()
    with pytest.raises(DigestMismatchError) as caught:
        await restarted.commit("u", "k", expected_sha256="0" * 64, algorithm="blake3")
    assert (caught.value.algorithm, caught.value.actual) == ("blake3", blake3(DATA).hexdigest())
    assert "BLAKE3" in str(caught.value)
    assert await restarted.upload_offset("u") == len(DATA)  # left intact, resumable


@pytest.mark.asyncio
async def test_put_in_each_algorithm(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
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


@pytest.mark.asyncio
async def test_unknown_algorithm_is_refused_before_any_io(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(UsageError, match="md5"):
        await store.create_upload("u", algorithm="md5")
    assert await store.list_uploads() == []
    with pytest.raises(UsageError, match="md5"):
        await store.put("k", pieces(b"x"), expected_sha256=None, algorithm="md5")
    assert not list((tmp_path / "blobs").rglob("k"))
