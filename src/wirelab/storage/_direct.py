"""The one-step write of :meth:`LocalBlobStore.put`: a new file, its bytes, one ``fdatasync``.

A direct send is never resumed, so it needs none of an upload's bookkeeping (the empty
data file, the offset record rewritten atomically, the rename into ``blobs/``): the bytes go
straight to the blob's final path, created exclusively, are verified, and become durable with
one ``fdatasync`` of the file; the caller then makes the directory entry durable (grouped
across requests, :mod:`._groupsync`). Not at the same time: on a journaling file system the
file's sync commits the journal transaction that also holds the new directory entry, so the
directory's fsync that follows is nearly free, while two at once can cost two commits.
Until the caller's metadata commit the blob is reachable by nobody, so writing it in place
is safe; after a crash, the caller's journal entry for the key deletes whatever part of it
is left.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from ._fsutil import run_io
from ._hashing import verify_digest
from ._pipeline import Hasher, WriteBehind, write_batches

__all__ = ["write_new"]


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
) -> int:
    """Create *path* (``FileExistsError`` if it exists), write *chunks* to it, check their
    digest (*hasher*, in *algorithm*) against *expected* (:class:`DigestMismatchError`),
    ``fdatasync`` it; the size.

    On any failure the file is removed (best effort: a crash leaves it for the caller's
    journal). The directory entry is not synced here.
    """
    fd = await run_io(_create, path)
    writer = WriteBehind(fd, 0, [hasher])
    try:
        await write_batches(writer, chunks)
        verify_digest("the body", algorithm, expected, hasher.hexdigest())
        # fdatasync includes the new size: all a reader needs (times are not).
        await run_io(os.fdatasync, fd)
    except BaseException:
        writer.close_when_idle()
        await run_io(_unlink, path)
        raise
    writer.close_when_idle()
    return writer.written
