"""uvicorn's httptools protocol with connection limits: head size, head timeout, a cap.

uvicorn (httptools) has no limit on the size of a request head: httptools joins a header
value with ``+=`` until it ends, so a 64 MiB header costs hundreds of MB. A connection
that sends nothing, or half a head, is kept forever. This subclass adds, per connection:

- **head size**: bytes are fed to the parser in slices while a head is being read, so at
  most ``max_header_bytes`` of it reach the parser (twice that for a head pipelined
  behind another request in the same read, which the parser's callbacks then measure);
  past that the answer is 431;
- **head timeout**: a head (from the connection's start, or from the first byte of a
  later request) must be complete within ``head_timeout`` seconds, else 408 (or a plain
  close when nothing at all was sent);
- **connection cap**: past ``max_connections`` open connections a new one is answered 503
  and closed at once, before anything of it is read.

Idle keep-alive connections are closed by uvicorn's own ``timeout_keep_alive``. Every
refusal is logged on ``wirelab.server`` with the client's address (never the request).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.server import ServerState

from ._config import ConnectionLimits

__all__ = ["guarded_protocol"]

_log = logging.getLogger("wirelab.server")

# After a 431, the rest of the client's head is read and dropped for this long, so that
# the client reads the answer (closing a socket with unread data sends RST, and the
# client would see "connection reset" instead of the 431).
LINGER_SECONDS = 2.0
# The head timer of a loop's connections wakes at most this often (see _HeadDeadlines):
# a head timeout fires up to this much late; and up to a millisecond early, uvloop's
# clock granularity (its timers themselves fire up to that early).
DEADLINE_SPACING = 0.01
DEADLINE_TOLERANCE = 0.001


class _HeadTooLarge(Exception):
    """Raised inside a parser callback: a pipelined head was past the limit."""


def refusal(status: int, detail: str) -> bytes:
    """A complete ``Connection: close`` response with a JSON ``{"detail": ...}`` body."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        b"content-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    return STATUS_LINE[status] + head + body


class _HeadDeadlines:
    """The head timeouts of one event loop's connections, on one loop timer.

    A loop timer per connection (armed when it opens, cancelled when its head is read)
    cost a short request measurably. Every connection of a protocol class waits the same
    ``timeout``, so deadlines come in the order they are set: a FIFO of ``(deadline,
    cell)`` where ``cell`` is a one-item list holding the waiting protocol, emptied when
    the wait is cancelled (so that a stale entry keeps no connection alive). The timer
    is armed for the oldest entry, and re-armed at most every :data:`DEADLINE_SPACING`.
    """

    __slots__ = ("_handle", "_queue", "loop", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self._queue: collections.deque[tuple[float, list[Any]]] = collections.deque()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, cell: list[Any]) -> None:
        """Call ``cell[0]._head_timed_out()`` in ``timeout`` seconds unless ``cell[0]`` is
        set to None before."""
        deadline = self.loop.time() + self.timeout
        self._queue.append((deadline, cell))
        if self._handle is None:
            self._handle = self.loop.call_at(deadline, self._fire)

    def __len__(self) -> int:
        """Entries waiting for their deadline (cancelled ones included until then)."""
        return len(self._queue)

    def _fire(self) -> None:
        self._handle = None
        now = self.loop.time()
        queue = self._queue
        try:
            while queue and queue[0][0] <= now + DEADLINE_TOLERANCE:
                cell = queue.popleft()[1]
                protocol, cell[0] = cell[0], None
                if protocol is not None:
                    protocol._head_timed_out()
        finally:  # after an error too (the loop reports it): the later ones still fire
            if queue:
                when = max(queue[0][0], now + DEADLINE_SPACING)
                self._handle = self.loop.call_at(when, self._fire)


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``), bound to ``limits``."""
    namespace = {"limits": limits, "connection_cap": limits.connection_cap()}
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), namespace)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module doc. ``limits`` is set on the subclass :func:`guarded_protocol` makes."""

    limits: ClassVar[ConnectionLimits]
    connection_cap: ClassVar[int]  # limits.connection_cap(), computed once
    _deadlines: ClassVar[_HeadDeadlines | None] = None  # the class's, on its loop

    # Slots, not the instance dict: uvicorn's attributes fill the keys an instance dict
    # shares with its class's others; more would give every connection a dict of its own.
    __slots__ = ("_head_bytes", "_head_wait", "_in_head", "_linger_timer", "_lingering",
                 "_measure_head", "lost", "on_lost")  # fmt: skip

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # uvicorn formats each request's access line arguments (client, target) whenever
        # the logger has handlers, even when INFO is off and the line is then dropped: a
        # per-request cost with nothing to show for it. A level set at run time applies
        # to the connections made after it.
        self.access_log = self.access_log and self.access_logger.isEnabledFor(logging.INFO)
        # uvicorn's Config annotates it int (whole seconds); its timer takes any float.
        self.timeout_keep_alive = self.limits.keepalive_timeout  # type: ignore[assignment]
        self._in_head = True  # between requests too: the next bytes start a head
        self._head_bytes = 0
        # The pending head timeout's cell in the loop's _HeadDeadlines, or None.
        self._head_wait: list[Any] | None = None
        # Whether the next head may hold bytes that _head_bytes did not count (it began
        # in the same read as the end of the request before it).
        self._measure_head = False
        self._lingering = False
        self._linger_timer: asyncio.TimerHandle | None = None
        # connection_lost has run; and what it calls then, once (see server._lost).
        self.lost = False
        self.on_lost: Callable[[], object] | None = None

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cap = self.connection_cap
        if len(self.connections) >= cap:
            self.transport = transport
            _log.warning(
                "refused connection from %s: %d connections open, the limit "
                "(WIRELAB_MAX_CONNECTIONS=%d)",
                _peer(transport),
                len(self.connections),
                cap,
            )
            transport.write(refusal(503, "too many connections; try again later"))
            transport.close()
            return
        super().connection_made(transport)
        if self.limits.head_timeout > 0:
            self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_wait is not None:
            self._cancel_head_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)
        self.lost = True
        if (on_lost := self.on_lost) is not None:
            self.on_lost = None
            on_lost()

    # -- reading -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a refused head: read and dropped
        # While a head is read, the parser gets at most what is left of the limit: the
        # head ends inside the slice (then the rest is body) or the limit is reached.
        while self._in_head and data:
            if self._head_wait is None:
                self._arm_head_timer()
            room = self.limits.max_header_bytes - self._head_bytes
            if room <= 0:
                self._refuse_head_too_large()
                return
            if len(data) <= room:  # the whole read (a head usually comes in one)
                self._head_bytes += len(data)
                self._feed(data)
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            if not self._feed(piece):
                return
        if data:
            self._feed(data)

    def _feed(self, data: bytes) -> bool:
        """uvicorn's ``data_received`` for one slice; False once the connection is done."""
        if self.transport.is_closing():
            return False
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse_head_too_large()
            else:
                _log.warning(
                    "refused request from %s: 400, invalid HTTP request (%s)",
                    _peer(self.transport),
                    exc,
                )
                self.send_400_response("Invalid HTTP request received.")
            return False
        return not self.transport.is_closing()

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # whatever comes next starts the next head
        self._head_bytes = 0
        self._measure_head = True  # it may be in the rest of this read (see below)

    def on_headers_complete(self) -> None:
        # A pipelined head may have reached the parser whole (it followed a body in one
        # read): measure what the parser kept. A connection's first head came through the
        # slices of data_received alone, all counted in _head_bytes: it cannot be larger.
        if self._measure_head:
            self._measure_head = False
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.limits.max_header_bytes:
                raise _HeadTooLarge
        self._in_head = False
        self._head_bytes = 0
        self._cancel_head_timer()
        super().on_headers_complete()

    # -- refusals ------------------------------------------------------------------------

    def _responding(self) -> bool:
        cycle: RequestResponseCycle | None = self.cycle
        return cycle is not None and not cycle.response_complete

    def _arm_head_timer(self) -> None:
        # Not while a response is sent: a pipelined head waits for it (and once it is
        # sent, uvicorn's keep-alive timeout bounds the wait for the rest).
        if self._head_wait is None and self.limits.head_timeout > 0 and not self._responding():
            self._wait_for_head()

    def _wait_for_head(self) -> None:
        deadlines = type(self)._deadlines
        if deadlines is None or deadlines.loop is not self.loop:
            deadlines = _HeadDeadlines(self.loop, self.limits.head_timeout)
            type(self)._deadlines = deadlines
        self._head_wait = [self]
        deadlines.add(self._head_wait)

    def _cancel_head_timer(self) -> None:
        if self._head_wait is not None:
            self._head_wait[0] = None
            self._head_wait = None

    def _head_timed_out(self) -> None:
        """Called by the loop's _HeadDeadlines (which has emptied the cell)."""
        self._head_wait = None
        if self.transport.is_closing():
            return
        peer = _peer(self.transport)
        timeout = self.limits.head_timeout
        cycle: RequestResponseCycle | None = self.cycle
        if self._head_bytes == 0 and cycle is None:
            _log.info("closed connection from %s: no request within %g s", peer, timeout)
            self.transport.close()
            return
        _log.warning(
            "refused request from %s: 408, request head incomplete after %g s (%d bytes)",
            peer,
            timeout,
            self._head_bytes,
        )
        self.transport.write(refusal(408, f"request head not complete within {timeout:g} s"))
        self.transport.close()

    def _refuse_head_too_large(self) -> None:
        limit = self.limits.max_header_bytes
        _log.warning(
            "refused request from %s: 431, request head larger than %d bytes "
            "(WIRELAB_MAX_HEADER_BYTES)",
            _peer(self.transport),
            limit,
        )
        self._lingering = True
        self._in_head = False
        self._cancel_head_timer()
        if self._responding():
            # A pipelined head: never write into the response in progress; finish it,
            # then close (the client sends the refused request again, and gets the 431).
            self.cycle.keep_alive = False
            return
        self.transport.write(refusal(431, f"request head larger than {limit} bytes"))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:  # pragma: no cover - TLS transports cannot half-close
            self.transport.close()


def _peer(transport: asyncio.BaseTransport) -> str:
    addr = get_remote_addr(transport)  # type: ignore[arg-type]
    return f"{addr[0]}:{addr[1]}" if addr else "unknown"
