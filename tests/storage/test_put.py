"""``BlobStore.put``: the one-step store of a direct send (LocalBlobStore and the default
that composes an upload), and the group fsync of directories."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wirelab._fsio import fsync_dir
from wirelab.storage import (
    BlobExistsError,
    BlobInfo,
    BlobStore,
    DigestMismatchError,
    LocalBlobStore,
)
from wirelab.storage._groupsync import DirSync


async def chunks(data: bytes, size: int = 300_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _read(store: BlobStore, key: str) -> bytes:
    async with await store.open(key) as reader:
        return b"".join([part async for part in reader])


async def _default_put(store: LocalBlobStore, key: str, data: bytes, digest: str) -> BlobInfo:
    """The base class's put (create_upload + append + commit) on the same store."""
    return await BlobStore.put(store, key, chunks(data), expected_sha256=digest)


@pytest.mark.asyncio
@pytest.mark.parametrize("default", [False, True], ids=["local", "composed"])
async def test_put_stores_verifies_and_refuses_to_overwrite(tmp_path: Path, default: bool) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(2_500_000)  # several write batches
    if default:
        info = await _default_put(store, "k", data, _sha(data))
    else:
        info = await store.put("k", chunks(data), expected_sha256=_sha(data))
    assert (info.key, info.size, info.sha256) == ("k", len(data), _sha(data))
    assert await _read(store, "k") == data
    assert list((tmp_path / "uploads").iterdir()) == []
    with pytest.raises(BlobExistsError):
        await store.put("k", chunks(b"other"), expected_sha256=None)
    assert await _read(store, "k") == data


@pytest.mark.asyncio
@pytest.mark.parametrize("default", [False, True], ids=["local", "composed"])
async def test_a_digest_mismatch_keeps_nothing(tmp_path: Path, default: bool) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(DigestMismatchError):
        if default:
            await _default_put(store, "k", b"body", "0" * 64)
        else:
            await store.put("k", chunks(b"body"), expected_sha256="0" * 64)
    blobs = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert blobs == []
    assert list((tmp_path / "uploads").iterdir()) == []


@pytest.mark.asyncio
async def test_a_failing_body_keeps_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 2_000_000
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await store.put("k", broken(), expected_sha256=None)
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


@pytest.mark.asyncio
async def test_concurrent_puts_all_land(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    bodies = {f"k{i}": os.urandom(1000 + i) for i in range(40)}
    infos = await asyncio.gather(
        *(store.put(k, chunks(b), expected_sha256=_sha(b)) for k, b in bodies.items())
    )
    assert [i.sha256 for i in infos] == [_sha(b) for b in bodies.values()]
    for key, body in bodies.items():
        assert await _read(store, key) == body


@pytest.mark.asyncio
async def test_dir_sync_serves_concurrent_callers_with_few_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wirelab.storage._groupsync as groupsync

    calls: list[Path] = []

    def counting(path: Path) -> None:
        calls.append(path)
        fsync_dir(path)

    monkeypatch.setattr(groupsync, "fsync_dir", counting)
    sync = DirSync()
    await asyncio.gather(*(sync.sync(tmp_path) for _ in range(50)))
    # The first caller's fsync runs alone; the 49 arriving meanwhile share the next one.
    assert 1 <= len(calls) <= 2
    await sync.sync(tmp_path)  # a caller after all that gets an fsync of its own
    assert len(calls) in (2, 3)


@pytest.mark.asyncio
async def test_dir_sync_reports_a_failed_fsync(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await DirSync().sync(tmp_path / "missing")
