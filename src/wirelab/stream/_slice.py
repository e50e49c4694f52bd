"""Cooperative time slices: how long one stream may keep the event loop to itself.

A stream whose files have no waits and whose client reads as fast as the loopback allows
never has to wait for anything: its writes never fill the socket buffer, so ``send`` never
suspends, and without a deliberate pause it would hold the loop until its last byte (every
other request, ``/healthz`` included, and even the news that its own client disconnected
would wait). A :class:`TimeSlice` measures the time since the stream last gave the loop
back; the engine checks it between units of work (one 64 KiB chunk, one file) and pauses
when the slice is used up.

The clock is injectable so that the rule can be tested without real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["SLICE_SECONDS", "TimeSlice"]

#: Default slice: at most about this long (plus one 64 KiB chunk and one write) between
#: pauses. 1 ms keeps ``/healthz`` p99 well under 50 ms with several unpaced streams
#: (benchmarks/fairness.py), while a pause (~10-20 us) costs ~1-2 % of throughput.
SLICE_SECONDS = 0.001


class TimeSlice:
    """The running slice of one stream.

    ``expired()`` is cheap (one clock read) and may be called per chunk; ``pause()`` gives
    the loop one turn (other tasks run and sockets are polled) and starts a new slice.
    ``pauses`` counts the turns given, for tests and diagnostics.
    """

    __slots__ = ("_clock", "_start", "pauses", "seconds")

    def __init__(
        self, seconds: float = SLICE_SECONDS, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._start = clock()
        self.pauses = 0

    def expired(self) -> bool:
        """Whether the slice is used up (the stream should pause before more work)."""
        return self._clock() - self._start >= self.seconds

    def restart(self) -> None:
        """Start a new slice (after the stream waited for something anyway)."""
        self._start = self._clock()

    async def pause(self) -> None:
        """Give the loop one turn, then start a new slice."""
        await asyncio.sleep(0)
        self.pauses += 1
        self._start = self._clock()

    async def checkpoint(self) -> None:
        """Pause if the slice is used up; otherwise return at once without suspending."""
        if self.expired():
            await self.pause()
