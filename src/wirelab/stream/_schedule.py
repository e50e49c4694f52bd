"""When a stream's schedule starts: the arrival of its request (pure, but for the clocks)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._runtime import Send, StreamRuntime

__all__ = ["CATCH_UP_LIMIT", "start_time"]

#: The longest wait of a request in the server's queues that a stream's schedule makes up
#: for (see :func:`start_time`), in seconds: well above what a burst the server keeps up
#: with makes a request wait (tens of milliseconds), and below a paced stream's usual
#: interval, so that making it up sends no overdue file at once. A server behind by more
#: is overloaded: each file owed at once would deepen the backlog that delayed the
#: request (1 s made up, two files of a stream paced at 0.5 s, cost a server held to half
#: a core 1.3-3x the floor's lateness: benchmarks/README.md).
CATCH_UP_LIMIT = 0.25


def start_time(runtime: StreamRuntime, send: Send) -> float:
    """When the request that ``send`` answers arrived, in the running loop's time: the
    moment a stream's schedule counts from.

    That is now, unless the server tells (``runtime.request_age``) that the request
    reached the host earlier: a request that waited in the listen queue while the loop
    served others (a burst of connections) keeps its client's schedule, its first files
    going out at once if their time has passed, instead of every file of the stream
    being late by that wait. A wait longer than :data:`CATCH_UP_LIMIT` counts as that
    long: a server that far behind would otherwise owe each stream it starts a burst of
    overdue files, and deepen the backlog that delayed it. The age is measured against
    the system's monotonic clock, which the loop's clock follows (asyncio's and
    uvloop's); the result is kept within the age before the loop's time of now, whatever
    the loop's clock.
    """
    now = asyncio.get_running_loop().time()
    request_age = runtime.request_age
    age = min(request_age(send), CATCH_UP_LIMIT) if request_age is not None else 0.0
    if age <= 0:
        return now
    return min(now, max(now - age, time.monotonic() - age))
