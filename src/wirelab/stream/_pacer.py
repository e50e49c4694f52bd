"""One timer for every paced stream of an event loop.

A paced stream waits before each file. With ``asyncio.sleep`` each wait arms and disarms a
timer of its own in the loop (a handle object, a libuv timer, a heap entry, and a cancel
when the sleep ends); with 10,000 streams sending a file every half second that is 20,000
timers a second. A :class:`Pacer` keeps the waiting streams in one heap and arms one loop
timer, for the earliest deadline; when it fires, every stream that is due is woken in the
same callback, in deadline order.

Timing is that of ``asyncio.sleep``: a waiter is woken when the loop's clock has reached its
deadline, give or take :attr:`Pacer.tolerance` (the granularity of the loop's clock: uvloop
counts in milliseconds, so its timers fire up to half a millisecond early; the pacer wakes
waiters due within the tolerance rather than arming a timer for a fraction of a
millisecond), never later than the loop allows.

Besides futures, the heap takes plain callbacks (:meth:`Pacer.call_at`): a paced stream
whose next file needs no wait for anything else is sent from the timer's own callback,
without waking its task (a future, a task step and the resumption of every coroutine
of its request, per file).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any

__all__ = ["TOLERANCE", "Pacer"]

#: Waiters due within this many seconds of the loop's clock are woken now (see the module
#: doc): one millisecond, uvloop's clock granularity.
TOLERANCE = 0.001


class Pacer:
    """The shared timer of one event loop.

    ``await pacer.sleep_until(deadline)`` (loop time) returns at the deadline. A waiter that
    is cancelled is dropped when its deadline comes; the others are not disturbed.
    ``call_at(deadline, callback, arg)`` calls ``callback(arg)`` then instead (it must not raise:
    an error would escape into the loop's exception handler and end this round of
    wake-ups). ``timers_armed`` counts the loop timers armed so far (for tests and
    diagnostics).
    """

    __slots__ = ("_handle", "_heap", "_loop", "_next", "_seq", "timers_armed", "tolerance")

    def __init__(self, loop: asyncio.AbstractEventLoop, tolerance: float = TOLERANCE) -> None:
        self._loop = loop
        self.tolerance = tolerance
        self._heap: list[tuple[float, int, Callable[[Any], object], Any]] = []
        self._seq = itertools.count()  # ties: first come, first woken
        self._handle: asyncio.TimerHandle | None = None
        self._next = float("inf")  # when the armed timer fires
        self.timers_armed = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def __len__(self) -> int:
        """Waiters in the heap (cancelled ones included until their deadline)."""
        return len(self._heap)

    def sleep_until(self, deadline: float) -> asyncio.Future[None]:
        """A future that is resolved at ``deadline`` (the loop's ``time()``)."""
        future = self._loop.create_future()
        heapq.heappush(self._heap, (deadline, next(self._seq), _resolve, future))
        if deadline < self._next:
            self._arm(deadline)
        return future

    def call_at(self, deadline: float, callback: Callable[[Any], object], arg: Any = None) -> None:
        """Call ``callback(arg)`` at ``deadline`` (the loop's ``time()``), in deadline
        order with the waiters. It may schedule more (the pacer's callback is running:
        nothing is armed until it ends)."""
        heapq.heappush(self._heap, (deadline, next(self._seq), callback, arg))
        if deadline < self._next:
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._next = when
        self._handle = self._loop.call_at(when, self._fire)
        self.timers_armed += 1

    def _fire(self) -> None:
        self._handle = None
        # While the due entries run, what they schedule arms nothing (-inf: no deadline
        # is earlier); the timer is armed once, at the end.
        self._next = float("-inf")
        heap = self._heap
        due = self._loop.time() + self.tolerance
        try:
            while heap and heap[0][0] <= due:
                _, _, run, arg = heapq.heappop(heap)
                run(arg)
        finally:
            self._next = float("inf")
            if heap:
                self._arm(heap[0][0])


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a cancelled waiter (its stream ended) is dropped
        future.set_result(None)
