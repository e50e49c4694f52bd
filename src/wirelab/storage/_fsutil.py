"""Blocking file-system helpers for :mod:`wirelab.storage._local` (run them off the loop)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .._exceptions import IntegrityError
from ._base import MAX_READ_CHUNK, BlobReader

T = TypeVar("T")

#: Prefix of temporary files; :meth:`LocalBlobStore.recover` removes them.
TMP_PREFIX = ".tmp-"


async def run_io(func: Callable[..., T], *args: object) -> T:
    """Run blocking *func* in a worker thread; a cancellation waits for it to finish.

    ``asyncio.to_thread`` alone would let the thread keep writing after the awaiting task
    was cancelled; here the caller only sees the cancellation once the file operation is
    over, so its view of the file stays exact.
    """
    fut = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await fut
        raise


def fsync_dir(path: Path) -> None:
    """Make the entries of directory *path* (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of *data* at the current position of *fd* (``os.write`` may be short)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: Path, data: bytes, *, tmp_dir: Path, sync_dir: bool = True) -> None:
    """Replace *path* by a file holding *data*, atomically and durably.

    The data goes to a temporary file in *tmp_dir* (same file system), is fsynced, then
    renamed over *path*; with *sync_dir* the parent directory is fsynced too. A crash at
    any point leaves either the old or the new content at *path*, plus at most a
    temporary file.
    """
    tmp = tmp_dir / f"{TMP_PREFIX}{path.name}-{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(path.parent)


def remove_tmp_files(directory: Path) -> None:
    """Remove the temporary files of interrupted operations in *directory*."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


class LocalReader(BlobReader):
    """A :class:`BlobReader` over an open file descriptor (closed by ``aclose``)."""

    def __init__(self, fd: int, *, key: str, size: int, start: int, end: int) -> None:
        super().__init__(key=key, size=size, start=start, end=end)
        self._fd: int | None = fd
        self._pos = start

    async def __anext__(self) -> bytes:
        fd = self._fd
        if fd is None or self._pos >= self.end:
            await self.aclose()
            raise StopAsyncIteration
        data = await run_io(os.pread, fd, min(MAX_READ_CHUNK, self.end - self._pos), self._pos)
        if not data:
            await self.aclose()
            raise IntegrityError(f"blob {self.key!r} shrank while being read")
        self._pos += len(data)
        return data

    async def aclose(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
