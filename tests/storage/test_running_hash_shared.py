"""Two LocalBlobStore instances on one folder (two server processes, one writer at a time
by their leases): a running hash is trusted only while the upload's record is the one its
instance wrote; otherwise the bytes are read again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wirelab.storage import DigestMismatchError, LocalBlobStore

pytestmark = pytest.mark.asyncio


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read(store: LocalBlobStore, key: str) -> bytes:
    async with await store.open(key) as reader:
        return b"".join([part async for part in reader])


async def test_an_upload_recreated_elsewhere_is_hashed_again(tmp_path: Path) -> None:
    a, b = LocalBlobStore(tmp_path), LocalBlobStore(tmp_path)
    old, new = os.urandom(1000), os.urandom(1000)
    await a.create_upload("u")
    assert await a.append("u", 0, body(old)) == 1000  # a's running hash: of `old`
    # b resets the upload (a batch's digest mismatch does) and writes other bytes.
    await b.abort_upload("u")
    await b.create_upload("u")
    assert await b.append("u", 0, body(new)) == 1000
    with pytest.raises(DigestMismatchError):
        await a.commit("u", "k", expected_sha256=sha(old))  # the stale hash would pass
    info = await a.commit("u", "k", expected_sha256=sha(new))
    assert info.sha256 == sha(new)
    assert await read(b, "k") == new


async def test_appends_through_two_instances_commit_with_the_right_digest(
    tmp_path: Path,
) -> None:
    a, b = LocalBlobStore(tmp_path), LocalBlobStore(tmp_path)
    parts = [os.urandom(700) for _ in range(3)]
    await a.create_upload("u")
    await a.append("u", 0, body(parts[0]))
    await b.append("u", 700, body(parts[1]))
    await a.append("u", 1400, body(parts[2]))  # a's hash stopped at 700: not used
    whole = b"".join(parts)
    assert (await a.commit("u", "k", expected_sha256=None)).sha256 == sha(whole)
    assert await read(b, "k") == whole
