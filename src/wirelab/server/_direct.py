"""Chunked response bodies written straight to uvicorn's transport.

A stream's body messages are plain HTTP chunks once the head is out. Each one sent as an
ASGI message costs a dictionary, uvicorn's ``send`` coroutine and a join of the chunk
header, the body and the trailing CRLF: for a paced small file that is a measurable part
of its cost, and for a 1 MiB message the join is a second copy of every byte (the first
being the message's own assembly). :class:`DirectBody` writes the same bytes with one
``writelines`` (uvloop sends the pieces with one ``writev``, without joining them).

It is used only where it says exactly what uvicorn would: on uvicorn's httptools
protocol, after a response head that chose chunked encoding (never for ``HEAD``), and
only while the transport takes writes (:meth:`DirectBody.blocked` is False). Otherwise,
and for a response's last message, the caller goes through ``send``: uvicorn then waits
for the socket to drain, drops writes after a disconnect and completes the response
(the final ``0`` chunk, keep-alive or close) as always.

:func:`direct_start` also writes the head of a stream's response, with its first chunk,
in one write: the bytes uvicorn's ``send`` would write for it (status line, the server's
default headers, the response's, ``connection: close`` where the connection will close,
``transfer-encoding: chunked``), without its per-header checks of headers the server
made itself, and one system call fewer per stream.

A back-to-back stream's large messages are written in whole pages: each chunk's bytes on
the wire (its size line, data and CRLF) a multiple of 4096, the rest of the message kept
for the next write (:meth:`DirectBody.write_parts` with ``hold_tail``, at most 4095 bytes,
written at the latest by :meth:`DirectBody.flush`). Why: over loopback, a client's
``recv`` copied a zero-wait ``content=ramp`` stream written in chunks of 1 MiB + 289
bytes at 0.20-0.29 s of CPU a GB, and the same bytes in chunks of whole pages at 0.155
(its time went to the kernel's copy out of the socket buffers, ``_copy_to_iter``: 2.3
times as long for the same bytes), so the client, not the server, had set the pace
(benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

__all__ = ["PAGE", "DirectBody", "cycle_of", "direct_body", "direct_start", "page_cut"]

#: Below this many bytes a chunk is joined into one buffer (one copy of a few KiB costs
#: less than handing the loop three pieces); from it on the pieces go as they are.
_JOIN_BELOW = 16 * 1024
#: Chunks written with ``hold_tail`` are cut to a multiple of this many bytes on the wire.
PAGE = 4096
#: ... from this size on (below it, a cut would hold back a large share of the chunk).
_CUT_FROM = 64 * 1024

Part = bytes | bytearray | memoryview


def page_cut(size: int) -> int:
    """The largest ``n <= size`` such that a chunk of ``n`` bytes takes a multiple of
    :data:`PAGE` bytes on the wire (``%x\\r\\n``, the data, ``\\r\\n``), for ``size >=
    PAGE``; ``size`` itself when it already does."""
    digits = len(b"%x" % size)
    for width in (digits, digits - 1):  # cutting may drop a hex digit (0x100010 -> 0xffff6)
        n = size - (size + width + 4) % PAGE
        if len(b"%x" % n) == width:
            return n
    return size  # not reached for size >= PAGE: one of the two widths fits


def _split(parts: Sequence[Part], n: int) -> tuple[list[Part], bytes]:
    """``parts`` cut after ``n`` bytes: the parts before (the one cut is a view), and the
    bytes after, joined."""
    head: list[Part] = []
    for i, part in enumerate(parts):
        if n >= len(part):
            head.append(part)
            n -= len(part)
            continue
        view = memoryview(part)
        if n:
            head.append(view[:n])
        return head, b"".join((view[n:], *parts[i + 1 :]))
    return head, b""


class DirectBody:
    """Writes chunks of one response's body (see the module doc)."""

    __slots__ = ("_cycle", "_flow", "_tail", "_transport")

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle
        self._flow = cycle.flow
        self._transport = cycle.transport
        self._tail = b""  # body bytes held back by write_parts(hold_tail=True)

    def blocked(self) -> bool:
        """True when a write must go through ``send`` instead: the socket's buffer is
        full (``send`` waits for it to drain) or the client is gone (``send`` drops it)."""
        return self._flow.write_paused or self._cycle.disconnected

    def write(self, data: Part) -> None:
        """Write ``data`` (not empty) as one chunk, after any bytes held back. Only when
        not :meth:`blocked`."""
        if self._tail:
            self.write_parts((data,))
            return
        size = len(data)
        if size < _JOIN_BELOW:
            self._transport.write(b"".join((b"%x\r\n" % size, data, b"\r\n")))
        else:
            self._transport.writelines((b"%x\r\n" % size, data, b"\r\n"))

    def write_parts(self, parts: Sequence[Part], hold_tail: bool = False) -> None:
        """Write ``parts`` (not all empty), after any bytes held back, as one chunk,
        without joining them. Only when not :meth:`blocked`. With ``hold_tail`` (the
        caller writes again at once), a large chunk is cut to whole pages on the wire and
        its last bytes (fewer than :data:`PAGE`) kept for the next write or :meth:`flush`."""
        if self._tail:
            parts = (self._tail, *parts)
            self._tail = b""
        size = sum(map(len, parts))
        if hold_tail and size >= _CUT_FROM and (n := page_cut(size)) < size:
            parts, self._tail = _split(parts, n)
            size = n
        self._transport.writelines((b"%x\r\n" % size, *parts, b"\r\n"))

    def flush(self) -> None:
        """Write the bytes held back, if any, as one chunk (dropped after a disconnect):
        before anything else goes out through ``send``. Also when :meth:`blocked` for a
        full socket: the transport keeps them in order ahead of ``send``'s write."""
        tail, self._tail = self._tail, b""
        if tail and not self._cycle.disconnected:
            self._transport.write(b"".join((b"%x\r\n" % len(tail), tail, b"\r\n")))


def cycle_of(send: Callable[[Any], Awaitable[None]]) -> RequestResponseCycle | None:
    """The uvicorn httptools cycle ``send`` is the method of, if it is one."""
    cycle = getattr(send, "__self__", None)
    return cycle if type(cycle) is RequestResponseCycle else None


def direct_body(send: Callable[[Any], Awaitable[None]]) -> DirectBody | None:
    """A :class:`DirectBody` for the response ``send`` belongs to, or None when its
    chunks must go through ``send`` (not uvicorn's httptools cycle, head not sent yet,
    not chunked, or already complete)."""
    cycle = cycle_of(send)
    if (
        cycle is None
        or not cycle.response_started
        or cycle.response_complete
        or cycle.chunked_encoding is not True
    ):
        return None
    return DirectBody(cycle)


def direct_start(
    send: Callable[[Any], Awaitable[None]], headers: Sequence[tuple[bytes, bytes]], first: bytes
) -> DirectBody | None:
    """Start a 200 chunked response with ``headers`` (lower-case names, none of them
    ``connection``, ``content-length`` or ``transfer-encoding``) and send ``first`` (not
    empty) as its first chunk, in one write; then a :class:`DirectBody` for the rest. None
    (nothing done) where ``send`` must do it: not uvicorn's httptools cycle, a response
    already started, a ``HEAD`` request, or a transport that takes no write now."""
    cycle = cycle_of(send)
    if (
        cycle is None
        or cycle.response_started
        or cycle.flow.write_paused
        or cycle.disconnected
        or cycle.scope["method"] == "HEAD"
    ):
        return None
    scope = cycle.scope
    if cycle.access_log:  # the line uvicorn's send logs
        cycle.access_logger.info(
            '%s - "%s %s HTTP/%s" %d', get_client_addr(scope), scope["method"],
            get_path_with_query_string(scope), scope["http_version"], 200,
        )  # fmt: skip
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    cycle.chunked_encoding = True
    parts = [STATUS_LINE[200]]
    for name, value in (*cycle.default_headers, *headers):
        parts += (name.lower(), b": ", value, b"\r\n")
    if not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts += (b"transfer-encoding: chunked\r\n\r\n%x\r\n" % len(first), first, b"\r\n")
    cycle.transport.write(b"".join(parts))
    return DirectBody(cycle)
