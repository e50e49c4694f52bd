"""The next message's keystream, made on another thread (:class:`Prefill`).

A stream without waits makes three passes over every byte of a large ``random`` file:
the keystream, the digest and the write to the socket, all on the event loop's core by
default. The keystream depends on nothing the loop does (the bytes are fixed by the seed
and their position in the stream), so one thread, shared by every stream of the server
(``StreamRuntime.keystream_executor``), makes the next message's bytes while the loop
hashes and writes the current one: one of the three passes moves to another core. AES
releases the GIL, so the two overlap; the handover is a ``submit`` and a look at a
``concurrent.futures`` future (no loop wake-up when the bytes are ready in time, the usual
case). Hashing stays on the loop: moved to the thread as well it was slower (the thread
and the client then share a core; benchmarks/README.md).

Placement: a job keeps its thread off the CPU the loop was on when it submitted the job
(:func:`keep_off`: the thread's other CPUs, re-set only when the loop has moved). Left
to itself the scheduler often woke the thread on the loop's CPU, where the two took
turns: 1.7-1.9 GB/s against 2.4-2.5 with the thread elsewhere. The thread needs about a
quarter of a core at full speed, so sharing another CPU with anything costs it little.

Order: the keystream is one sequential generator, so a stream has at most one message
pending, and the loop touches the keystream again only after it has taken that message.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future

import numpy as np
import numpy.typing as npt

from ._content import FILL_LIMIT, FILL_MARGIN, ZEROS

__all__ = ["POOL_SIZE", "BufferPool", "Prefill", "current_cpu", "keep_off"]

#: Buffers a server keeps for reuse (1 MiB each). One stream uses three to four at a
#: time: the message being made, the one being written, the one before (its views live
#: until the engine builds the next message's parts) and one whose last bytes the body
#: may still hold back; past the pool, buffers are made and freed as they were before.
POOL_SIZE = 8
#: ``sys.getrefcount`` of a pooled array nothing else refers to: the pool's list, the
#: loop variable and the call's argument.
_UNUSED_REFS = 3

Filler = Callable[[memoryview, memoryview], int]
_Buffer = npt.NDArray[np.uint8]


class BufferPool:
    """Buffers of ``FILL_LIMIT + FILL_MARGIN`` bytes for the keystream thread, shared by
    a server's streams and used from its event loop only (``StreamRuntime``)."""

    __slots__ = ("_arrays", "size")

    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self._arrays: list[_Buffer] = []

    def get(self) -> _Buffer:
        """A buffer nothing else refers to: one of the pool's whose views are all gone
        (its reference count says so: the message written, nothing held back by the body
        or the transport), else a new one, kept while the pool has fewer than ``size``.
        Reusing memory matters: a new 1 MiB buffer can cost 256 page faults, each
        zeroing a page."""
        for array in self._arrays:
            if sys.getrefcount(array) == _UNUSED_REFS:
                return array
        array = np.empty(FILL_LIMIT + FILL_MARGIN, np.uint8)
        if len(self._arrays) < self.size:
            self._arrays.append(array)
        return array


class Prefill:
    """One stream's keystream made a message ahead on ``executor`` by ``fill`` (the
    stream's :meth:`ContentSource.filler`), into buffers from ``pool``.

    Cancelling :meth:`take` (the stream ends) leaves a job that has started running to
    finish into its buffer, which nothing reads: the keystream is the stream's alone.
    """

    __slots__ = ("_buffer", "_executor", "_fill", "_job", "_pool")

    def __init__(self, executor: Executor, fill: Filler, pool: BufferPool) -> None:
        self._executor = executor
        self._fill = fill
        self._pool = pool
        self._job: Future[int] | None = None
        self._buffer = memoryview(b"")  # the pending message's, FILL_MARGIN bytes longer

    def start(self, n: int) -> None:
        """Make the next ``n`` bytes of the keystream (1 to ``FILL_LIMIT``) on the
        executor. Only when nothing is pending."""
        if self._job is not None:
            raise RuntimeError("a message is already being made: take it first")
        if not 0 < n <= FILL_LIMIT:
            raise ValueError(f"n must be 1 to {FILL_LIMIT}, got {n}")
        buffer = self._pool.get()[: n + FILL_MARGIN].data
        self._job = self._executor.submit(_make, self._fill, current_cpu(), n, buffer)
        self._buffer = buffer

    async def take(self, n: int) -> memoryview | None:
        """The pending message's ``n`` bytes (``n`` must be the size it was started
        with; the view is ``n + FILL_MARGIN`` long), waiting for them if they are not
        made yet; None when nothing is pending (the caller makes them itself)."""
        job = self._job
        if job is None:
            return None
        if n != (made := len(self._buffer) - FILL_MARGIN):
            raise ValueError(f"asked for {n} bytes, {made} are being made")
        self._job = None
        if not job.done():
            await asyncio.wrap_future(job)
        job.result()  # its exception, if the job failed
        buffer, self._buffer = self._buffer, memoryview(b"")
        return buffer


def _make(fill: Filler, loop_cpu: int, n: int, buffer: memoryview) -> int:
    """The job: keep off the loop's CPU, then make ``n`` bytes into ``buffer``."""
    keep_off(loop_cpu)
    return fill(ZEROS[:n], buffer)


def _cpu_reader() -> Callable[[], int]:
    """libc's ``sched_getcpu`` (the CPU the calling thread runs on) where the platform has
    it and CPU affinity (Linux), else a function that says -1 (unknown)."""
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError, AttributeError):
            getcpu = ctypes.CDLL(None, use_errno=True).sched_getcpu
            getcpu.restype, getcpu.argtypes = ctypes.c_int, []
            if getcpu() >= 0:
                return getcpu
    return lambda: -1


#: The CPU the calling thread runs on now, -1 where that cannot be known.
current_cpu = _cpu_reader()


class _Placement(threading.local):
    avoided = -1  # the CPU this thread was last kept off
    home: frozenset[int] = frozenset()  # its CPUs before the first keep_off


_placement = _Placement()


def keep_off(cpu: int) -> None:
    """Let the calling thread run on its CPUs (those it had before its first call) except
    ``cpu``. Nothing when ``cpu`` is unknown (-1) or the same as last time in this thread;
    all of them when ``cpu`` is the only one; a refused call (the process's CPUs changed
    from outside meanwhile) leaves the thread as it was."""
    if cpu < 0 or cpu == _placement.avoided:
        return
    if not _placement.home:
        _placement.home = frozenset(os.sched_getaffinity(0))
    _placement.avoided = cpu
    home = _placement.home
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, (home - {cpu}) or home)
