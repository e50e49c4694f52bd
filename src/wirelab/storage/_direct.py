"""The one-step write of :meth:`LocalBlobStore.put`: a new file, its bytes, one ``fdatasync``.

A direct send is never resumed, so it needs none of an upload's bookkeeping (the empty
data file, the offset record rewritten atomically, the rename into ``blobs/``): the bytes go
straight to the blob's final path, created exclusively, are verified, and become durable with
one ``fdatasync`` of the file, while the caller's ``sync_dir`` makes the directory entry
durable at the same time (grouped across requests, :mod:`._groupsync`): the two syncs
overlap instead of following each other. Until the caller's metadata commit the blob is
reachable by nobody, so writing it in place is safe; after a crash, the caller's journal
entry for the key deletes whatever part of it is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from ._fsutil import run_io
from ._hashing import verify_digest
from ._pipeline import Hasher, WriteBehind, write_batches

__all__ = ["write_new"]

_WRITE_SIZE = 1024 * 1024  # bytes per writev batch, as in _local.py


def _create(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def write_new(
    path: Path,
    chunks: AsyncIterator[bytes],
    hasher: Hasher,
    algorithm: str,
    expected: str | None,
    sync_dir: Callable[[], Awaitable[None]],
) -> int:
    """Create *path* (``FileExistsError`` if it exists), write *chunks* to it, check their
    digest (*hasher*, in *algorithm*) against *expected* (:class:`DigestMismatchError`),
    ``fdatasync`` it; the size. ``sync_dir()`` (which makes the new directory entry
    durable) starts as soon as the file exists and has succeeded on return.

    On any failure the file is removed (best effort: a crash leaves it for the caller's
    journal).
    """
    fd = await run_io(_create, path)
    entry = asyncio.ensure_future(sync_dir())
    writer = WriteBehind(fd, 0, [hasher])
    try:
        await write_batches(writer, chunks, _WRITE_SIZE)
        verify_digest("the body", algorithm, expected, hasher.hexdigest())
        # fdatasync includes the new size: all a reader needs (times are not).
        await run_io(os.fdatasync, fd)
        await entry
    except BaseException:
        writer.close_when_idle()
        with contextlib.suppress(BaseException):
            await entry  # never left running: it may fail after the file is gone
        await run_io(_unlink, path)
        raise
    writer.close_when_idle()
    return writer.written
