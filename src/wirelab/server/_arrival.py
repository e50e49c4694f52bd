"""How long ago a request reached this host: the kernel's receive time of its bytes.

A busy server reads a request later than it arrived: in a burst of connections the
request waits in the listen queue while the event loop serves the others. A paced stream
counts its schedule from the request, which is what its client sees, so the stream engine
asks here how long ago the request's bytes arrived (``StreamRuntime.request_age``).

On Linux, ``TCP_INFO`` gives ``tcpi_last_data_recv``: the milliseconds since the connection
last received data (for a ``GET``, its request), counted in the kernel's clock ticks
(1 to 10 ms). The age given is that less :data:`TICK_MARGIN`, never below 0, so that a file
is never sent before its time, only up to a tick late. Elsewhere, and for a ``send`` that
is not uvicorn's httptools cycle over a TCP socket, the age is 0: the schedule then counts
from when the server began the response, as it always did.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from ._direct import cycle_of

__all__ = ["TICK_MARGIN", "request_age", "socket_data_age"]

#: The coarsest tick of the kernel's clock (HZ = 100), taken off every age (see the module doc).
TICK_MARGIN = 0.010
_TCP_INFO = getattr(socket, "TCP_INFO", None)  # Linux only
#: Offset and end of ``tcpi_last_data_recv`` in ``struct tcp_info`` (linux/tcp.h: 8 bytes
#: of u8 fields, then u32s; unchanged since the structure was introduced).
_LAST_DATA_RECV = 52
_INFO_SIZE = 56


def socket_data_age(sock: Any) -> float:
    """Seconds since ``sock`` (a connected TCP socket, or uvloop's stand-in for one) last
    received data, less :data:`TICK_MARGIN`; 0 where the system does not tell."""
    if _TCP_INFO is None:
        return 0.0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _INFO_SIZE)
    except (OSError, AttributeError, TypeError, ValueError):
        return 0.0
    if len(info) < _INFO_SIZE:
        return 0.0
    millis = int.from_bytes(info[_LAST_DATA_RECV:_INFO_SIZE], sys.byteorder)
    return max(0.0, millis / 1000 - TICK_MARGIN)


def request_age(send: Callable[[Any], Awaitable[None]]) -> float:
    """:func:`socket_data_age` of the connection of the request ``send`` answers (uvicorn's
    httptools cycle), or 0."""
    cycle = cycle_of(send)
    if cycle is None:
        return 0.0
    sock = cycle.transport.get_extra_info("socket")
    return 0.0 if sock is None else socket_data_age(sock)
