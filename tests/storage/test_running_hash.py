"""LocalBlobStore's running hash and write-behind.

``commit`` skips re-reading an upload only when this store instance appended every byte
of it, durably; a restart, or a failed write, makes it read the file again. The tests
tell the two apart by changing the file on disk behind the store's back: a commit that
reads the file again sees the change, one that uses the running hash does not.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import random
import resource
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from wirelab.storage import DigestMismatchError, LocalBlobStore, UploadInfo

MIB = 1024 * 1024
DATA = random.Random(7).randbytes(3 * MIB + 17)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def flip_first_byte(root: Path, upload_id: str) -> bytes:
    """Change the first byte of an upload's data file in place; return the new content."""
    path = root / "uploads" / f"{upload_id}.data"
    content = bytearray(path.read_bytes())
    content[0] ^= 0xFF
    path.write_bytes(content)
    return bytes(content)


async def blob(store: LocalBlobStore, key: str) -> bytes:
    async with await store.open(key) as reader:
        return b"".join([part async for part in reader])


@pytest.mark.asyncio
async def test_commit_after_a_restart_reads_the_file_again(tmp_path: Path) -> None:
    first = LocalBlobStore(tmp_path)
    await first.create_upload("u")
    await first.append("u", 0, pieces(DATA))
    changed = flip_first_byte(tmp_path, "u")

    restarted = LocalBlobStore(tmp_path)
    await restarted.recover()
    with pytest.raises(DigestMismatchError) as info:
        await restarted.commit("u", "k", expected_sha256=sha(DATA))
    assert info.value.actual == sha(changed)  # the digest of the bytes on disk
    await restarted.commit("u", "k", expected_sha256=sha(changed))
    assert await blob(restarted, "k") == changed


@pytest.mark.asyncio
async def test_commit_in_the_appending_instance_does_not_read_the_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    await store.create_upload("u")
    await store.append("u", 0, pieces(DATA[:MIB]))
    await store.append("u", MIB, pieces(DATA[MIB:]))  # contiguous appends keep it
    flip_first_byte(tmp_path, "u")
    info = await store.commit("u", "k", expected_sha256=sha(DATA))
    assert (info.size, info.sha256) == (len(DATA), sha(DATA))


@pytest.mark.asyncio
async def test_an_interrupted_append_keeps_the_running_hash(tmp_path: Path) -> None:
    cut = MIB + MIB // 2

    async def client_goes_away() -> AsyncIterator[bytes]:
        async for part in pieces(DATA[:cut]):
            yield part
        raise ConnectionResetError("client went away")

    store = LocalBlobStore(tmp_path)
    await store.create_upload("u")
    with pytest.raises(ConnectionResetError):
        await store.append("u", 0, client_goes_away())
    assert await store.upload_offset("u") == cut  # everything that arrived is durable
    flip_first_byte(tmp_path, "u")
    await store.append("u", cut, pieces(DATA[cut:]))
    # Only the running hash, which went on through the interruption, still matches.
    await store.commit("u", "k", expected_sha256=sha(DATA))


@pytest.mark.asyncio
async def test_a_cancelled_append_keeps_every_received_byte(tmp_path: Path) -> None:
    received = asyncio.Event()
    cut = 2 * MIB + 5

    async def stalls() -> AsyncIterator[bytes]:
        async for part in pieces(DATA[:cut]):
            yield part
        received.set()
        await asyncio.Event().wait()  # the client stalls until the server gives up
        yield b"never"

    store = LocalBlobStore(tmp_path)
    await store.create_upload("u")
    task = asyncio.create_task(store.append("u", 0, stalls()))
    await received.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.upload_offset("u") == cut
    assert (tmp_path / "uploads" / "u.data").read_bytes() == DATA[:cut]
    await store.append("u", cut, pieces(DATA[cut:]))
    await store.commit("u", "k", expected_sha256=sha(DATA))
    assert await blob(store, "k") == DATA


@pytest.mark.asyncio
async def test_many_small_chunks_are_written_in_order(tmp_path: Path) -> None:
    # more buffers than one writev call takes (IOV_MAX), some of them empty
    parts = [DATA[i : i + 7] for i in range(0, 7 * 5000, 7)] + [b""] * 3
    data = b"".join(parts)

    async def tiny() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    store = LocalBlobStore(tmp_path)
    await store.create_upload("u")
    assert await store.append("u", 0, tiny()) == len(data)
    await store.commit("u", "k", expected_sha256=sha(data))
    assert await blob(store, "k") == data


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Make writes past *limit* bytes of any file fail with EFBIG (RLIMIT_FSIZE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the process dies
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.asyncio
async def test_a_failed_write_drops_the_running_hash(tmp_path: Path) -> None:
    """The hash consumed bytes whose write failed: it must never be used again."""
    store = LocalBlobStore(tmp_path)
    await store.create_upload("u")
    await store.append("u", 0, pieces(DATA[:MIB]))
    garbage = b"\x00" * (3 * MIB)
    with file_size_limit(MIB + MIB // 2), pytest.raises(OSError) as info:
        await store.append("u", MIB, pieces(garbage))
    assert info.value.errno == errno.EFBIG
    assert await store.upload_offset("u") == MIB  # nothing of the failed append counts
    await store.append("u", MIB, pieces(DATA[MIB:]))
    await store.commit("u", "k", expected_sha256=sha(DATA))
    assert await blob(store, "k") == DATA


@pytest.mark.asyncio
async def test_a_failed_checkpoint_keeps_the_last_durable_offset(tmp_path: Path) -> None:
    """A checkpoint runs behind the receiving; when its fsync fails, the append fails,
    nothing after the previous checkpoint is recorded, and the upload resumes from it."""
    store = LocalBlobStore(tmp_path, checkpoint_bytes=1)
    real = store._make_durable
    calls = 0

    def second_fails(fd: int, info: UploadInfo, offset: int) -> UploadInfo:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(errno.EIO, "fsync failed")
        return real(fd, info, offset)

    store._make_durable = second_fails  # type: ignore[method-assign]
    await store.create_upload("u")
    with pytest.raises(OSError):
        await store.append("u", 0, pieces(DATA))
    assert await store.upload_offset("u") == MIB  # the first checkpoint's offset
    store._make_durable = real  # type: ignore[method-assign]
    await store.append("u", MIB, pieces(DATA[MIB:]))
    await store.commit("u", "k", expected_sha256=sha(DATA))  # re-read: the hash was dropped
    assert await blob(store, "k") == DATA
