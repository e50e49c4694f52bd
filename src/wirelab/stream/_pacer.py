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
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["TOLERANCE", "Pacer"]

#: Waiters due within this many seconds of the loop's clock are woken now (see the module
#: doc): one millisecond, uvloop's clock granularity.
TOLERANCE = 0.001


class Pacer:
    """The shared timer of one event loop.

    ``await pacer.sleep_until(deadline)`` (loop time) returns at the deadline. A waiter that
    is cancelled is dropped when its deadline comes; the others are not disturbed.
    ``timers_armed`` counts the loop timers armed so far (for tests and diagnostics).
    """

    __slots__ = ("_handle", "_heap", "_loop", "_next", "_seq", "timers_armed", "tolerance")

    def __init__(self, loop: asyncio.AbstractEventLoop, tolerance: float = TOLERANCE) -> None:
        self._loop = loop
        self.tolerance = tolerance
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
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
        heapq.heappush(self._heap, (deadline, next(self._seq), future))
        if deadline < self._next:
            self._arm(deadline)
        return future

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._next = when
        self._handle = self._loop.call_at(when, self._fire)
        self.timers_armed += 1

    def _fire(self) -> None:
        self._handle = None
        self._next = float("inf")
        heap = self._heap
        due = self._loop.time() + self.tolerance
        while heap and heap[0][0] <= due:
            future = heapq.heappop(heap)[2]
            if not future.done():  # a cancelled waiter (its stream ended) is dropped
                future.set_result(None)
        if heap:
            self._arm(heap[0][0])
