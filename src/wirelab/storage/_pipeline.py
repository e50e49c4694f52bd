"""Write-behind for :meth:`LocalBlobStore.append`: disk writes overlap the receiving.

Without it an append alternates between waiting for the next batch of the body and
writing (and hashing) the previous one, so the network, the disk and the hash take turns
on one core at a time. :class:`WriteBehind` starts the write of a batch in a worker
thread and returns, so that the caller collects the next batch meanwhile; the digest
update of the batch runs in a second worker thread at the same time as its write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence

from .._digests import Hasher

__all__ = [
    "FIRST_BATCH",
    "WRITE_BATCH",
    "Background",
    "Batches",
    "Hasher",
    "WriteBehind",
    "settle",
    "write_batches",
    "writev_all",
]

#: Bytes collected before they are handed to a write (one writev call and one hash
#: update, each in a worker thread): large enough to make system calls and thread
#: hand-offs rare, small enough to bound memory per append (at most two batches: one
#: being written, one being collected). An append starts with 1 MiB batches (what it
#: made durable is never far behind what arrived) and moves to 4 MiB once it carried
#: 16 MiB: for 1 GiB sends, server CPU per GiB -15 % (benchmarks/README.md, "Relay
#: transfer").
FIRST_BATCH = 1024 * 1024
WRITE_BATCH = 4 * 1024 * 1024
_LONG_APPEND = 16 * 1024 * 1024


def _batch_bytes(moved: int) -> int:
    """The batch size for an append that has carried *moved* bytes so far."""
    return WRITE_BATCH if moved >= _LONG_APPEND else FIRST_BATCH


# POSIX guarantees at least 16; Linux and macOS allow 1024 buffers per writev call.
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16, 1024)


def writev_all(fd: int, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
    """Write *buffers* in order at the current position of *fd*, with as few system calls
    as possible (``writev`` may write less than asked: the rest is written again)."""
    views = [memoryview(b) for b in buffers if len(b)]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + _IOV_MAX])
        while written and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]


def _hash_all(hashers: Sequence[Hasher], buffers: Sequence[bytes | bytearray | memoryview]) -> None:
    for hasher in hashers:
        for buffer in buffers:
            hasher.update(buffer)


class WriteBehind:
    """Writes batches of buffers to *fd* in worker threads, one batch at a time.

    :meth:`submit` waits for the batch in flight, then starts the next one and returns at
    once. Batches are written (and fed to every one of *hashers*) in submission order.
    :attr:`written` is the position after the last batch whose write *completed*: only
    bytes below it may be fsynced and recorded as durable.

    A failed write (or hash update) is raised by the next :meth:`submit` or
    :meth:`drain`; :attr:`failed` is then true for good and the hashers must not be
    trusted (they may have consumed bytes that were not written). Cancelling the awaiting
    task never interrupts a batch: its threads run to completion and a later
    :meth:`drain` still learns how it ended.
    """

    def __init__(self, fd: int, position: int, hashers: Sequence[Hasher] = ()) -> None:
        self.fd = fd
        self.written = position
        self.hashers = list(hashers)
        self.failed = False
        self._jobs: list[asyncio.Future[None]] = []
        self._size = 0

    @property
    def pending(self) -> list[asyncio.Future[None]]:
        """The jobs of the batch in flight that have not ended."""
        return [job for job in self._jobs if not job.done()]

    @property
    def busy(self) -> bool:
        """Whether a thread of the batch in flight may still be running."""
        return bool(self.pending)

    async def submit(self, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
        """Wait for the batch in flight, then start writing *buffers* (not copied: the
        caller must not modify them until the next :meth:`drain` returned)."""
        await self.drain()
        if self.failed:
            raise OSError("an earlier write of this append failed")
        if not any(len(b) for b in buffers):
            return
        # Plain executor futures, not tasks: nothing cancels them (asyncio.run cancels
        # tasks at shutdown), so "done" always means that the thread has returned.
        loop = asyncio.get_running_loop()
        self._jobs = [loop.run_in_executor(None, writev_all, self.fd, buffers)]
        if self.hashers:
            self._jobs.append(loop.run_in_executor(None, _hash_all, self.hashers, buffers))
        self._size = sum(len(b) for b in buffers)

    async def drain(self) -> None:
        """Wait until the batch in flight ended; raise its error, if any."""
        jobs = self._jobs
        if not jobs:
            return
        # asyncio.wait does not cancel the jobs when the caller is cancelled: they stay
        # in _jobs and the next drain() waits for them again.
        await asyncio.wait(jobs)
        self._jobs = []
        for job in jobs:
            if job.cancelled() or job.exception() is not None:
                self.failed = True
                job.result()  # raises the job's exception
        self.written += self._size

    def close_when_idle(self) -> None:
        """Close the descriptor now, or as soon as the threads of the batch in flight end."""
        pending = [job for job in self._jobs if not job.done()]
        if not pending:
            os.close(self.fd)
            return
        remaining = len(pending)

        def done(_: object) -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0:
                os.close(self.fd)

        for job in pending:
            job.add_done_callback(done)


class Background:
    """One blocking job at a time in a worker thread, behind the caller: an append's
    checkpoints (fsync + record) run while the body keeps arriving, instead of stopping
    the receiving for each one.

    Like :class:`WriteBehind`'s batches, a job is a plain executor future: cancelling the
    awaiting task never interrupts it, and :meth:`settle` waits for it through
    cancellations.
    """

    def __init__(self) -> None:
        self._job: asyncio.Future[None] | None = None

    @property
    def idle(self) -> bool:
        """Whether no job is running (a finished one may still hold its error)."""
        return self._job is None or self._job.done()

    def start(self, func: Callable[..., None], *args: object) -> None:
        """Run ``func(*args)`` in a worker thread; the previous job must be collected."""
        if self._job is not None:
            raise RuntimeError("the previous job was not collected")
        self._job = asyncio.get_running_loop().run_in_executor(None, func, *args)

    async def collect(self) -> None:
        """Wait for the job in flight, if any; raise its error."""
        job = self._job
        if job is None:
            return
        await asyncio.wait([job])
        self._job = None
        job.result()

    async def settle(self) -> None:
        """Wait for the job in flight through cancellations; its error is dropped (the
        job records its own failure, see ``WriteBehind.failed``)."""
        while self._job is not None and not self._job.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([self._job])
        self._job = None


async def settle(writer: WriteBehind) -> bool:
    """Wait for the batch in flight to end, through cancellations; whether every write
    of *writer* succeeded so far. Error paths use it before they record anything.

    A cancellation that arrives meanwhile is not lost: the caller is already unwinding
    with an exception of its own, which it re-raises.
    """
    while writer.busy:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(writer.pending)
    try:
        await writer.drain()
    except Exception:
        return False
    return not writer.failed


class Batches:
    """An append's chunks collected into write batches of :func:`_batch_bytes`.

    :meth:`add` a chunk; once it says the batch is full, submit :attr:`pending` and call
    :meth:`submitted`. Until then :attr:`pending` is what arrived and was not handed to a
    write (an interrupted append still writes it).
    """

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self._size = 0
        self._moved = 0

    def add(self, chunk: bytes | bytearray | memoryview) -> bool:
        """Add *chunk* to :attr:`pending` (a ``bytes`` one uncopied: it is written as
        is); whether :attr:`pending` is a full batch."""
        if chunk:
            self.pending.append(chunk if type(chunk) is bytes else bytes(chunk))
            self._size += len(chunk)
        return self._size >= _batch_bytes(self._moved)

    def submitted(self) -> None:
        """:attr:`pending` went to a write: start the next batch."""
        self.pending = []
        self._moved += self._size
        self._size = 0


async def write_batches(writer: WriteBehind, chunks: AsyncIterator[bytes]) -> None:
    """Write all of *chunks* through *writer* in batches (:class:`Batches`), then wait
    for the last one. On any failure the threads are done before the exception leaves
    (the caller may close or remove the file at once); nothing is made durable here."""
    batches = Batches()
    try:
        async for chunk in chunks:
            if batches.add(chunk):
                await writer.submit(batches.pending)  # returns while the batch is written
                batches.submitted()
        await writer.submit(batches.pending)
        await writer.drain()
    except BaseException:
        await settle(writer)
        raise
