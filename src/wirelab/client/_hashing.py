"""The digest (and the disk writes) on a second core while the transfer goes on:
:class:`HashingBuffers`.

hashlib and blake3 release the GIL while they hash a large buffer, so a worker thread can
hash block ``i`` (and hand it to a ``sink``, e.g. a disk write) while the calling thread
receives block ``i + 1``. The buffers are page-aligned (``mmap``), so a sink may write them
with ``O_DIRECT``.

The calling thread takes a buffer with :meth:`HashingBuffers.take`, fills it, and hands
the filled part over with :meth:`HashingBuffers.hash`; it may keep using the view (to write
it to a file or a socket) until it calls :meth:`take` again ``depth`` times later, which
waits until the worker is done with that buffer. Blocks are hashed in the order given.
"""

from __future__ import annotations

import hashlib
import mmap
import queue
import threading
from collections.abc import Callable
from typing import Any, Final

from .._closing import Closing

__all__ = ["HashingBuffers"]

_STOP: Final = None


class HashingBuffers(Closing):
    """A ring of ``depth`` page-aligned buffers of ``size`` bytes, hashed in order by one
    worker thread, which then passes each block to ``sink`` (if given), in order too.

    Use as a context manager (the worker stops on exit, after the blocks handed over).
    :meth:`hexdigest` and :meth:`copy_hasher` first wait for every handed-over block; an
    error of the hasher or the sink is raised by the next :meth:`take`, :meth:`check`,
    :meth:`hexdigest` or :meth:`copy_hasher` (blocks after it are neither hashed nor sunk).
    """

    def __init__(
        self,
        size: int,
        *,
        depth: int = 4,
        hasher: Any = None,
        sink: Callable[[memoryview], object] | None = None,
    ) -> None:
        if depth < 2:
            raise ValueError("depth must be at least 2")
        self._views = [memoryview(mmap.mmap(-1, size)) for _ in range(depth)]
        self._sink = sink
        self._free = [threading.Event() for _ in range(depth)]
        for event in self._free:
            event.set()
        self._next = 0
        self._hasher = hasher if hasher is not None else hashlib.sha256()
        self._queue: queue.SimpleQueue[tuple[int, memoryview] | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wirelab-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            index, view = item
            try:
                if self._error is None:
                    self._hasher.update(view)
                    if self._sink is not None:
                        self._sink(view)
            except BaseException as exc:  # handed to the caller at its next call
                self._error = exc
            finally:
                self._free[index].set()
                with self._lock:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.set()

    def take(self) -> tuple[int, memoryview]:
        """The next buffer (its index and a view of all of it), once the worker is done."""
        index = self._next
        self._next = (index + 1) % len(self._views)
        self._free[index].wait()
        self._raise()
        return index, self._views[index]

    def hash(self, index: int, n: int) -> memoryview:
        """Queue the first ``n`` bytes of buffer ``index`` for hashing; return that view."""
        view = self._views[index][:n]
        self._free[index].clear()
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put((index, view))
        return view

    def _drain(self) -> None:
        self._idle.wait()
        self._raise()

    def check(self) -> None:
        """Wait until every handed-over block was hashed and sunk; raise their error."""
        self._drain()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def hexdigest(self) -> str:
        """The digest of every block handed over so far."""
        self._drain()
        return str(self._hasher.hexdigest())

    def copy_hasher(self) -> Any:
        """A copy of the hash state after every block handed over so far."""
        self._drain()
        return self._hasher.copy()

    def close(self) -> None:
        """Stop the worker (after the blocks already queued)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
