"""Blocking file-system helpers for :mod:`wirelab.storage._local` (run them off the loop)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

from .._exceptions import IntegrityError
from .._fsio import TMP_PREFIX
from ._base import MAX_READ_CHUNK, BlobReader

T = TypeVar("T")


async def run_io(func: Callable[..., T], *args: object, executor: Executor | None = None) -> T:
    """Run blocking *func* in a worker thread; a cancellation waits for it to finish.

    ``asyncio.to_thread`` alone would let the thread keep writing after the awaiting task
    was cancelled; here the caller only sees the cancellation once the file operation is
    over, so its view of the file stays exact. *executor*: a pool of its own instead of
    the loop's default one.
    """
    fut: asyncio.Future[T]
    if executor is None:
        fut = asyncio.ensure_future(asyncio.to_thread(func, *args))
    else:
        fut = asyncio.get_running_loop().run_in_executor(executor, func, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await fut
        raise


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
